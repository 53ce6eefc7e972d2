import pytest

from bus import Bus


@pytest.fixture
def bus(tmp_path):
    return Bus(tmp_path / "root")


@pytest.fixture
def project(bus):
    return bus.create_project("proj")
