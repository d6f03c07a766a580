"""The prepared GPU check runs end to end at toy size on the CPU, so that it cannot rot
between the rare GPU slots."""
import json
import subprocess
import sys

import pytest

from .workflow_helpers import ROOT


@pytest.mark.slow
def test_gpu_check_runs_every_phase_at_toy_size(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench/gpu_check.py"), "--toy", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    phases = result["phases"]
    assert not [name for name, p in phases.items() if "error" in p or "skipped" in p]
    assert len(phases["throughput_blend2flux_f256"]["result"]) == 8  # 2 batches x amp x channels-last
    assert phases["fit_2_epochs_then_resume_to_3"]["result"]["resume_ok"]
    assert phases["syncs_in_20_training_steps"]["result"] is None  # counted on a GPU only
    assert phases["staged_loader"]["result"] is None
    assert result["paper_blend2flux_70_epochs_h"] > 0 and result["facts"]["device"] == "cpu"
    fresh = phases["fresh_blends_draw"]["result"]
    assert fresh["blends_per_s"] > 0 and fresh["draw_over_step_rate"] > 0
