"""export-c's C text: compiled by the system C compiler, and its sizes checked by running."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from converters.c_source import CModel, CTensor, c_identifier, resolver_method, write_c_source

MODEL = Path(__file__).resolve().parents[1] / "device_bench" / "models" / "conv_int8.tflite"
CC = shutil.which("cc")


@pytest.mark.parametrize(
    ("op", "method"),
    [
        ("CONV_2D", "AddConv2D"),
        ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("MAX_POOL_2D", "AddMaxPool2D"),
        ("BATCH_MATMUL", "AddBatchMatMul"),
        ("LOGISTIC", "AddLogistic"),
    ],
)
def test_resolver_method(op: str, method: str) -> None:
    assert resolver_method(op) == method


def test_c_identifier() -> None:
    assert c_identifier("model_int8") == "model_int8"
    assert c_identifier("my-model.v2") == "my_model_v2"
    assert c_identifier("8bit") == "model_8bit"


def _model(name: str = "conv_int8") -> CModel:
    return CModel(
        name=name,
        model_bytes=MODEL.read_bytes(),
        arena_bytes=2784,
        arena_note="a test value",
        inputs=(CTensor((1, 12, 12, 1), "int8", 0.031, -5),),
        outputs=(CTensor((1, 3), "int8", 0.0186, -35),),
        ops=("CONV_2D", "FULLY_CONNECTED"),
        source=MODEL.name,
    )


CHECK_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "%(name)s.c"

int main(int argc, char **argv) {
    static unsigned char file[1 << 20];
    FILE *f = fopen(argv[1], "rb");
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    const int shape[] = %(upper)s_INPUT_0_SHAPE;
    %(upper)s_INPUT_0_TYPE sample[%(upper)s_INPUT_0_ELEMENTS];
    if (sizeof(%(name)s) != n || %(name)s_len != n) return 1;
    if (memcmp(%(name)s, file, n) != 0) return 2;
    if ((uintptr_t)%(name)s %% 16 != 0) return 3;
    if (sizeof sample != 144 || shape[1] != 12) return 4;
    printf("%%zu %%d %%d\n", sizeof(%(name)s), %(upper)s_ARENA_BYTES, %(upper)s_OP_COUNT);
    return 0;
}
"""


@pytest.mark.skipif(CC is None, reason="no system C compiler (cc)")
def test_c_source_compiles_and_holds_the_file(tmp_path: Path) -> None:
    model = _model()
    source, header = write_c_source(model, tmp_path)
    assert "AddConv2D" in header.read_text()
    subprocess.run([CC, "-std=c11", "-Wall", "-Werror", "-c", str(source), "-o",
                    str(tmp_path / "model.o")], check=True)  # fmt: skip
    program = tmp_path / "check.c"
    program.write_text(CHECK_PROGRAM % {"name": model.name, "upper": model.name.upper()})
    binary = tmp_path / "check"
    subprocess.run([CC, "-std=c11", "-Wall", "-I", str(tmp_path), str(program), "-o",
                    str(binary)], check=True)  # fmt: skip
    run = subprocess.run([str(binary), str(MODEL)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.returncode
    assert run.stdout.split() == [str(MODEL.stat().st_size), "2784", "2"]
