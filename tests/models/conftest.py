"""Matrix records travel with the test reports: a worker attaches its model's record to the report, and
the process that collects reports (the xdist controller, or pytest itself without xdist) writes it
to $FORGE_FE_MATRIX_OUT. With remote workers (`--tx ssh=...`) the records so land on the machine that
started the run; each model's record is its own file, so a crashed worker loses that model's row only."""
import pytest

from forge_fe.tools import matrix

RECORD = "forge_fe_matrix_record"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        rec = matrix.take_last_record()
        if rec is not None:
            outcome.get_result().user_properties.append((RECORD, rec))


def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == RECORD:
            matrix.write_record(matrix.ModelRecord(**value))
