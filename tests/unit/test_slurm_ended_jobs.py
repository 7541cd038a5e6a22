"""EndedJobs: bounded in number and age, per system."""

from services.slurm.ended_jobs import EndedJobs


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_recorded_job_is_known_on_its_system_only():
    ended = EndedJobs()
    ended.add("local", "42")
    assert ("local", "42") in ended
    assert ("other", "42") not in ended
    assert ("local", "43") not in ended


def test_entries_expire_after_their_age():
    clock = Clock()
    ended = EndedJobs(max_age=60, clock=clock)
    ended.add("local", "42")
    clock.now += 59
    assert ("local", "42") in ended
    clock.now += 2
    assert ("local", "42") not in ended
    assert len(ended) == 0


def test_the_oldest_entries_go_first_beyond_the_bound():
    ended = EndedJobs(max_entries=3)
    for job_id in ("1", "2", "3"):
        ended.add("local", job_id)
    ended.add("local", "1")  # recorded again: now the newest
    ended.add("local", "4")
    assert [("local", j) in ended for j in ("1", "2", "3", "4")] == [True, False, True, True]


def test_discard_forgets_a_job():
    ended = EndedJobs()
    ended.add("local", "42")
    ended.discard("local", "42")
    assert ("local", "42") not in ended
