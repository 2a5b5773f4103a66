"""Compile CubeCL-generated CUDA C++ files with NVRTC and ptxas, without a GPU.

    python3 bench/nvrtc_compile.py --cuda-root DIR --arch 90 FILE.cu [FILE.cu ...]

DIR holds NVIDIA's pip packages (nvidia-cuda-nvrtc-cu12, nvidia-cuda-runtime-cu12,
nvidia-cuda-cccl-cu12, nvidia-cuda-nvcc-cu12 for ptxas), unpacked as `DIR/nvidia/...`;
bench/cuda_compile_check.sh installs them. The NVRTC options are those CubeCL's CUDA runtime
passes (`--gpu-architecture=sm_XX[a]`, the toolkit's include folders, `-lineinfo`). For each
file: NVRTC's log on failure, else ptxas's resource usage (registers, spills, shared memory).
Exits 1 if any file fails to compile.
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile


def nvrtc(lib, source, name, options):
    prog = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source, name, 0, None, None))
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    check(lib, lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)))
    log = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetProgramLog(prog, log))
    ptx = None
    if status == 0:
        check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        check(lib, lib.nvrtcGetPTX(prog, buf))
        ptx = buf.value.decode()
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return status, log.value.decode(errors="replace"), ptx


def check(lib, status):
    if status != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise RuntimeError(lib.nvrtcGetErrorString(status).decode())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda-root", required=True)
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    nv = os.path.join(a.cuda_root, "nvidia")
    lib = ctypes.CDLL(os.path.join(nv, "cuda_nvrtc", "lib", "libnvrtc.so.12"))
    # One include folder in a toolkit install; spread over three packages here.
    includes = [os.path.join(nv, p, "include") for p in ("cuda_runtime", "cuda_nvcc", "cuda_cccl")]
    arch = f"sm_{a.arch}a" if a.arch >= 90 else f"sm_{a.arch}"
    options = [f"--gpu-architecture={arch}", "-lineinfo"] + [f"--include-path={i}" for i in includes]
    ptxas = os.path.join(nv, "cuda_nvcc", "bin", "ptxas")
    failed = 0
    for path in a.files:
        with open(path, "rb") as f:
            source = f.read()
        status, log, ptx = nvrtc(lib, source, os.path.basename(path).encode(), options)
        name = os.path.basename(path)
        if ptx is None:
            failed += 1
            print(f"FAIL\t{name}\tNVRTC status {status}\n{log}")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(ptx)
        r = subprocess.run([ptxas, f"-arch={arch}", "-v", f.name, "-o", os.devnull],
                           capture_output=True, text=True)
        os.unlink(f.name)
        if r.returncode != 0:
            failed += 1
            print(f"FAIL\t{name}\tptxas\n{r.stderr}")
            continue
        usage = " ".join(l.split("ptxas info    : ", 1)[-1] for l in r.stderr.splitlines()
                         if "Used" in l or "spill" in l)
        print(f"OK\t{name}\t{usage}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
