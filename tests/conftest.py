import pytest

from bus import Bus


@pytest.fixture
def bus(tmp_path):
    return Bus(tmp_path / "root")


@pytest.fixture
def project(bus):
    return bus.create_project("proj")


@pytest.fixture(scope="session")
def ray_cluster():
    """One small real Ray cluster for the whole session (starting one takes ~5 s), with
    two fake GPUs so that GPU scheduling is exercised on a CPU machine."""
    import ray

    # Ray gives its raylet a fixed 30 s to register; a loaded 2-core machine can miss
    # that. Try twice, then fail in one line that says what to check.
    for attempt in (1, 2):
        try:
            # address="local": always a cluster of our own, never one `ray start` left on the machine.
            # log_to_driver=False, as `aisci` has it (cluster/connect.py): a worker's lines (a
            # SIGTERMed worker's stack) printed by Ray's thread landed in whatever test ran
            # then, and broke a one-line-error assertion; they stay in Ray's session logs.
            ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, namespace="aisci-tests",
                     log_to_driver=False)
            break
        except Exception as e:  # noqa: BLE001 - any failure to start is reported the same way
            ray.shutdown()
            if attempt == 2:
                pytest.fail(f"a local Ray cluster for the tests did not start twice ({type(e).__name__}: "
                            f"{str(e)[:300]}); check free memory and /tmp, and the machine's load", pytrace=False)
    yield ray
    ray.shutdown()
