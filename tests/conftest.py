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

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, namespace="aisci-tests")
    yield ray
    ray.shutdown()
