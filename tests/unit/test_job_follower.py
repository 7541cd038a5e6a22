"""The job follower's pure logic: scheduler states → task states, and which updates it sends."""

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.compute.follower import marker_for_task, progress, task_state


def test_task_states():
    assert task_state("PENDING", None) == "QUEUED"
    assert task_state("RUNNING", None) == "RUNNING"
    assert task_state("COMPLETED", 0) == "SUCCEEDED"
    assert task_state("FAILED", 3) == "FAILED"
    assert task_state("TIMEOUT", 0) == "FAILED"
    assert task_state("CANCELLED by 1001", 0) == "CANCELLED"
    assert task_state("OUT_OF_MEMORY", 0) == "FAILED"


def test_progress_only_when_something_changed():
    task = tasks_pb2.Task(id="t" * 24, state="QUEUED",
                          result=tasks_pb2.TaskResult(job_id="7", scheduler_state="PENDING"))
    assert progress(task, "7", "PENDING", None) is None
    running = progress(task, "7", "RUNNING", None)
    assert running.state == "RUNNING" and not running.result.HasField("exit_code")
    failed = progress(task, "7", "FAILED", 3)
    assert failed.result.exit_code == 3 and "exit code 3" in failed.error.message
    assert marker_for_task("a" * 24) != marker_for_task("b" * 24)


def test_an_ended_record_is_final_only_when_consistent():
    from services.compute.follower import settled
    assert settled("COMPLETED", 0, 0) and settled("CANCELLED by 1001", 0, 15) and settled("TIMEOUT", 0, 0)
    assert settled("FAILED", 3, 0) and settled("FAILED", 0, 9)
    # FAILED needs a non-zero exit or a signal: exit 0 or no exit code is a record caught half-written
    assert not settled("FAILED", 0, 0) and not settled("FAILED", None, None)


def test_an_incomplete_record_waits_a_few_rounds_then_is_taken():
    from firecrest_mesh.compute.v1 import compute_pb2
    from services.compute.follower import UNSETTLED_ROUNDS, JobFollower

    follower = JobFollower.__new__(JobFollower)
    follower._unsettled = {}
    half_written = compute_pb2.Job(job_id="7")
    half_written.status.state = "FAILED"
    half_written.status.exit_code.number_value = 0
    half_written.status.interrupt_signal.number_value = 0
    assert [follower._settled("t1", half_written) for _ in range(UNSETTLED_ROUNDS + 1)] == \
        [False] * UNSETTLED_ROUNDS + [True]
    complete = compute_pb2.Job(job_id="8")
    complete.status.state = "FAILED"
    complete.status.exit_code.number_value = 3
    assert follower._settled("t2", complete) and follower._unsettled == {}


def test_a_job_not_yet_ended_is_recorded_without_an_exit_code():
    # accounting shows "0:0" for a running job: a task already RUNNING needs no update each round
    running = tasks_pb2.Task(id="t" * 24, state="RUNNING",
                             result=tasks_pb2.TaskResult(job_id="7", scheduler_state="RUNNING"))
    assert progress(running, "7", "RUNNING", 0) is None
    queued = tasks_pb2.Task(id="t" * 24, state="QUEUED",
                            result=tasks_pb2.TaskResult(job_id="7", scheduler_state="PENDING"))
    update = progress(queued, "7", "RUNNING", 0)
    assert update.state == "RUNNING" and not update.result.HasField("exit_code")
    done = progress(running, "7", "COMPLETED", 0)
    assert done.state == "SUCCEEDED" and done.result.HasField("exit_code") and done.result.exit_code == 0


def test_the_controller_answers_for_its_owners_jobs_not_yet_ended():
    from firecrest_mesh.compute.v1 import compute_pb2
    from services.compute.follower import live_jobs
    from services.compute.scheduler import SchedulerJob

    def held(job_id, user, state):
        job = compute_pb2.Job(job_id=job_id, user=user)
        job.status.state = state
        return SchedulerJob(job=job)
    jobs = [held("1", "alice", "PENDING"), held("2", "alice", "RUNNING"), held("3", "alice", "COMPLETING"),
            held("4", "alice", "COMPLETED"), held("5", "alice", "CANCELLED"), held("6", "bob", "RUNNING"),
            held("7", "alice", "SUSPENDED")]
    # ended ones (COMPLETING included: its exit code is final) are accounting's; bob's are never alice's
    assert sorted(live_jobs(jobs, "alice")) == ["1", "2", "7"]
    assert live_jobs(jobs, "alice")["2"].status.state == "RUNNING"


def test_a_stuck_round_is_cancelled_and_the_following_goes_on(monkeypatch):
    import asyncio
    import types

    from services.compute import follower as module

    monkeypatch.setattr(module, "ROUND_LIMIT_SECONDS", 0.05)
    rounds = []

    async def follow_once():
        rounds.append(len(rounds))
        if len(rounds) == 1:
            await asyncio.Event().wait()  # the first round never ends by itself
        return 0

    stub = module.JobFollower.__new__(module.JobFollower)
    stub.follow_once = follow_once
    stub._config = types.SimpleNamespace(tasks=types.SimpleNamespace(follow_interval_seconds=0))

    async def run():
        loop = asyncio.create_task(stub._run_forever())
        for _ in range(100):
            if len(rounds) >= 3:
                break
            await asyncio.sleep(0.02)
        loop.cancel()
    asyncio.run(run())
    assert len(rounds) >= 3
