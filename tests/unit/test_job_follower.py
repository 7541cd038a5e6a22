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
