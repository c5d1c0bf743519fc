"""tools/mkl_amd.py: the shim applies only to AMD CPUs with AVX2, and leaves a training step's numbers unchanged."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import mkl_amd  # noqa: E402

AMD = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx fma avx2\n"
AMD_NO_AVX2 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx\n"
INTEL = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx fma avx2 avx512f\n"

# One seeded training step of a small ViT (3 blocks, dim 192: real matmul shapes), printed as JSON.
STEP = """
import json, torch, torch.nn.functional as F
from vitcore import ViTConfig, VisionTransformer
torch.manual_seed(0)
model = VisionTransformer(ViTConfig(heads=[12] * 3, mlp_widths=[384] * 3))
x, y = torch.randn(32, 3, 64, 64), torch.randint(0, 200, (32,))
logits = model(x)
F.cross_entropy(logits, y).backward()
grad = model.blocks[0].attn.qkv.weight.grad
print(json.dumps({"logits": logits[:4].flatten().tolist(), "grad": grad.flatten()[:2000].tolist()}))
"""


@pytest.mark.parametrize("cpuinfo, wanted", [(AMD, True), (AMD_NO_AVX2, False), (INTEL, False), ("", False)])
def test_the_shim_is_for_amd_cpus_with_avx2_only(cpuinfo, wanted):
    assert mkl_amd.cpu_wants_shim(cpuinfo) is wanted


def test_other_cpus_get_the_environment_unchanged(tmp_path):
    env, said = mkl_amd.shim_environment({"LD_PRELOAD": "/x.so", "A": "1"}, INTEL, tmp_path)
    assert env == {"LD_PRELOAD": "/x.so", "A": "1"} and "unchanged" in said
    assert not list(tmp_path.iterdir())  # nothing built


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_an_existing_preload_is_kept_behind_the_shim(tmp_path):
    env, _ = mkl_amd.shim_environment({"LD_PRELOAD": "/x.so"}, AMD, tmp_path)
    shim = tmp_path / "libmkl_intel_cpu_true.so"
    assert env["LD_PRELOAD"] == f"{shim} /x.so" and shim.exists()


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_a_training_step_gives_the_same_numbers_with_the_shim(tmp_path):
    def run(extra_env):
        env = {**os.environ, "OMP_NUM_THREADS": "2", **extra_env}
        done = subprocess.run(
            [sys.executable, "-c", STEP], env=env, capture_output=True, text=True, cwd=ROOT, check=True
        )
        return json.loads(done.stdout)

    shim = mkl_amd.build_shim(tmp_path)
    plain, shimmed = run({}), run({"LD_PRELOAD": str(shim)})
    for key in ("logits", "grad"):
        assert len(plain[key]) == len(shimmed[key]) > 0
        scale = max(abs(v) for v in plain[key])
        assert max(abs(a - b) for a, b in zip(plain[key], shimmed[key])) <= 1e-4 * scale


def test_the_wrapper_runs_the_command_with_its_exit_code(tmp_path):
    env = {**os.environ, "VITCORE_CACHE": str(tmp_path)}
    code = "import os, sys; print(os.environ.get('LD_PRELOAD', '')); sys.exit(3)"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mkl_amd.py"), sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    applies = mkl_amd.cpu_wants_shim(Path("/proc/cpuinfo").read_text()) if Path("/proc/cpuinfo").exists() else False
    if applies and (shutil.which("cc") or shutil.which("gcc")):
        assert "libmkl_intel_cpu_true.so" in done.stdout
    else:
        assert "unchanged" in done.stderr


def test_a_command_that_does_not_exist_gets_a_clear_error(tmp_path):
    env = {**os.environ, "VITCORE_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mkl_amd.py"), "no-such-command-xyz"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 127
    assert "cannot run 'no-such-command-xyz'" in done.stderr and "Traceback" not in done.stderr
