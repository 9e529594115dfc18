"""The CPU's model name and whether it computes bfloat16 natively, for the benchmarks."""
import platform

# /proc/cpuinfo flags of native bfloat16 arithmetic: AVX512_BF16 (dot products) and AMX
# (tile matrix units). Without them TensorFlow emulates bfloat16, slower than float32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_summary() -> str:
    """E.g. "CPU: AMD EPYC 9R14 | avx512_bf16: no, amx_bf16: no, amx_tile: no"."""
    name, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    found = ", ".join(f"{flag}: {'yes' if flag in flags else 'no'}" for flag in BF16_FLAGS)
    return f"CPU: {name} | {found}"
