"""Runs last: no service crashed or was restarted while the API suite abused it."""

from conftest import CRASH_PATTERNS, LOGS, SERVICES, new_log_text, wait_healthy


def test_no_service_crashed_during_the_suite(logs_at_start):
    assert LOGS.is_dir(), f"no log folder {LOGS} (set PETS_STATE)"
    crashes = []
    for path, text in new_log_text(logs_at_start).items():
        for line in text.splitlines():
            if CRASH_PATTERNS.search(line):
                crashes.append(f"{path.name}: {line.strip()[:300]}")
    assert not crashes, "services crashed during the API tests:\n" + "\n".join(crashes[:20])
    wait_healthy(10)
    assert SERVICES
