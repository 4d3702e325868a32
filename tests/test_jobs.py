"""The job registry: every kind jobs.enqueue accepts has a handler in the
worker, and no handler waits for a kind nobody may enqueue."""
import pytest

from app import jobs, provisioning
from app.errors import WarrenError


def test_every_job_kind_has_exactly_one_handler():
    assert set(provisioning.HANDLERS) == set(jobs.KINDS)


def test_an_unknown_kind_is_refused_before_anything_is_written():
    with pytest.raises(WarrenError, match="unknown instance job kind 'reboot'"):
        jobs.enqueue(None, 1, "reboot")
