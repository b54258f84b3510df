"""The local Ray start retries only Ray's startup timeout (a busy machine), after a shutdown each time, and
raises any other failure at once. Ray's own init and shutdown are replaced for the test: a raylet that times
out at registration cannot be produced on demand."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from pipeline.driver import local_ray  # noqa: E402

TIMEOUT = Exception("The current node timed out during startup. This could happen because ...")


class FakeStarts:
    """ray.init raising the given outcomes in turn (None: started), counting the shutdowns."""

    def __init__(self, outcomes):
        self.outcomes, self.inits, self.shutdowns, self.kwargs = list(outcomes), 0, 0, None

    def init(self, **kwargs):
        self.inits, self.kwargs = self.inits + 1, kwargs
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome

    def shutdown(self):
        self.shutdowns += 1


@pytest.fixture
def starts(monkeypatch):
    def install(outcomes):
        fake = FakeStarts(outcomes)
        monkeypatch.setattr(ray, "init", fake.init)
        monkeypatch.setattr(ray, "shutdown", fake.shutdown)
        return fake

    return install


def test_a_startup_timeout_is_tried_again_after_a_shutdown(starts):
    fake = starts([TIMEOUT, TIMEOUT, None])
    assert local_ray.init_local_ray(address="local", num_cpus=2) is ray
    assert (fake.inits, fake.shutdowns, fake.kwargs) == (3, 2, {"address": "local", "num_cpus": 2})


def test_other_failures_raise_at_once_and_timeouts_give_up_after_the_attempts(starts):
    fake = starts([ValueError("bad address")])
    with pytest.raises(ValueError, match="bad address"):
        local_ray.init_local_ray(address="local")
    assert fake.inits == 1
    fake = starts([TIMEOUT] * local_ray.ATTEMPTS)
    with pytest.raises(Exception, match="timed out during startup"):
        local_ray.init_local_ray(address="local")
    assert fake.inits == local_ray.ATTEMPTS
