"""`netstack bench --quick`: every scenario on both systems in under a
minute, in namespaces of its own that are gone afterwards, also after SIGINT.
With the debug build the figures only need to exist (> 0); the figures worth
reading come from a release build."""
import json
import shutil
import signal
import subprocess
import time

import pytest

from conftest import NETSTACK, _skip_reason

SCENARIOS = ["bulk-rx", "bulk-tx", "tcp-rr", "tcp-rr-busy-poll", "udp-pps", "memory-bulk"]
SYSTEMS = ["kernel", "netstack"]

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")


@pytest.fixture(autouse=True)
def needs_root_and_tun():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


def bench_namespaces(pid):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"nsbench-{pid}-")]


def test_quick_run_reports_every_scenario_on_both_systems(tmp_path):
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    start = time.monotonic()
    proc = subprocess.Popen([NETSTACK, "bench", "--quick", "--json", str(out_json), "--report", str(out_html)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, stderr
    assert elapsed < 60, f"--quick took {elapsed:.1f} s"
    assert bench_namespaces(proc.pid) == []

    report = json.loads(out_json.read_text())
    results = {(r["scenario"], r["system"]): r for r in report["results"]}
    assert len(report["results"]) == len(results), "one result per scenario and system"
    for scenario in SCENARIOS:
        for system in SYSTEMS:
            r = results.get((scenario, system))
            assert r is not None, (scenario, system, report["failures"])
            assert r["value"] > 0, r
            assert r["min"] <= r["value"] <= r["max"], r
            assert len(r["samples"]) >= 1
            assert r["unit"]
            # What the rounds cost in CPU (the machine's, from /proc/stat).
            e = r["efficiency"]
            assert e["unit"] and e["value"] > 0 and e["min"] <= e["value"] <= e["max"], e
    # The third system, unmodified programs through the preload library, when it is built.
    if report.get("systems") and "netstack-preload" in report["systems"]:
        for scenario in ["bulk-rx", "bulk-tx", "tcp-rr", "tcp-rr-busy-poll", "udp-pps"]:
            r = results.get((scenario, "netstack-preload"))
            assert r is not None and r["value"] > 0, (scenario, report["failures"])
        skipped = {(s["scenario"], s["system"]) for s in report["skipped"]}
        assert skipped == {("memory-bulk", "netstack-preload")}
    # netstack's packets per second in memory-bulk, besides its Gbit/s.
    secondary = results[("memory-bulk", "netstack")]["secondary"]
    assert secondary["unit"] == "packets/s" and secondary["min"] <= secondary["value"] <= secondary["max"]
    assert secondary["value"] > 0
    machine = report["machine"]
    assert machine["cores"] >= 1
    for key in ["cpu", "kernel", "swift", "date", "tcpCongestionControl"]:
        assert machine[key], key

    # The table on stdout: a row per scenario, with both systems' medians
    # (its first row; a CPU row follows it).
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    for scenario in SCENARIOS:
        assert scenario in rows, stdout
        assert "failed" not in rows[scenario]
    cpu_rows = [line for line in stdout.splitlines() if line.startswith("| ") and "CPU-s" in line]
    assert len(cpu_rows) == len(SCENARIOS), stdout
    assert "kernel TCP congestion control: " in stdout

    html = out_html.read_text()
    assert html.count("<svg ") == len(SCENARIOS)
    assert "<script" not in html and "https://" not in html


def test_family_6_runs_every_scenario_over_ipv6(tmp_path):
    """`--family 6`: the same scenarios with both systems' ends at fd00::1
    and fd00::2 (the kernel's iperf3 and echo server bound to fd00::2 only,
    so a figure can only come over IPv6), and the report says so."""
    out_json = tmp_path / "out.json"
    proc = subprocess.run([NETSTACK, "bench", "--quick", "--family", "6", "--rounds", "1", "--max-rounds", "1",
                           "--scenario", "bulk-rx", "bulk-tx", "tcp-rr", "udp-pps", "memory-bulk",
                           "--json", str(out_json)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out_json.read_text())
    assert report["machine"]["family"] == "IPv6"
    assert "over IPv6" in proc.stdout
    results = {(r["scenario"], r["system"]): r for r in report["results"]}
    for scenario in ["bulk-rx", "bulk-tx", "tcp-rr", "udp-pps", "memory-bulk"]:
        for system in SYSTEMS:
            r = results.get((scenario, system))
            assert r is not None and r["value"] > 0, (scenario, system, report["failures"])


@pytest.mark.parametrize("when", ["setting-up", "measuring"])
def test_sigint_removes_the_namespaces(when):
    proc = subprocess.Popen([NETSTACK, "bench", "--quick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wanted = 1 if when == "setting-up" else 3
        deadline = time.monotonic() + 30
        while len(bench_namespaces(proc.pid)) < wanted and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert len(bench_namespaces(proc.pid)) >= wanted, "the bench made its namespaces"
        if when == "measuring":
            time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert bench_namespaces(proc.pid) == []
