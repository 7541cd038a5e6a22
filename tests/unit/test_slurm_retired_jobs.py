"""RetiredJobs: bounded in number and age, per system."""

from services.slurm.retired_jobs import RetiredJobs


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_recorded_job_is_known_on_its_system_only():
    retired = RetiredJobs()
    retired.add("local", "42")
    assert ("local", "42") in retired
    assert ("other", "42") not in retired
    assert ("local", "43") not in retired


def test_entries_expire_after_their_age():
    clock = Clock()
    retired = RetiredJobs(max_age=60, clock=clock)
    retired.add("local", "42")
    clock.now += 59
    assert ("local", "42") in retired
    clock.now += 2
    assert ("local", "42") not in retired
    assert len(retired) == 0


def test_the_oldest_entries_go_first_beyond_the_bound():
    retired = RetiredJobs(max_entries=3)
    for job_id in ("1", "2", "3"):
        retired.add("local", job_id)
    retired.add("local", "1")  # recorded again: now the newest
    retired.add("local", "4")
    assert [("local", j) in retired for j in ("1", "2", "3", "4")] == [True, False, True, True]


def test_discard_forgets_a_job():
    retired = RetiredJobs()
    retired.add("local", "42")
    retired.discard("local", "42")
    assert ("local", "42") not in retired
