"""Wall time of one ``ModelConfig.tiny()`` forward on a [1, 2, 3, 3, 112, 112] input (T=2, N=3) on CPU.

python benchmarks/tiny_forward.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from vggt_t_mv import VGGTTMV, ModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = VGGTTMV(ModelConfig.tiny()).eval()
    images = torch.rand(1, 2, 3, 3, 112, 112)
    queries = torch.rand(1, 16, 2) * 111
    print(f"machine: {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}, float32")
    print("| input | query points | median forward (s) | min (s) |")
    print("|---|---|---|---|")
    for query_points in (None, queries):
        times = []
        with torch.inference_mode():
            model(images, query_points=query_points)
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(images, query_points=query_points)
                times.append(time.perf_counter() - start)
        label = "none" if query_points is None else f"{query_points.shape[1]} (tracks)"
        print(f"| [1, 2, 3, 3, 112, 112] | {label} | {statistics.median(times):.3f} | {min(times):.3f} |")


if __name__ == "__main__":
    main()
