"""Multiply two matrices on the GPU with torch and print where it ran."""

import time

import torch

assert torch.cuda.is_available(), "torch sees no CUDA device"
dev = torch.device("cuda")
a = torch.randn(4096, 4096, device=dev)
b = torch.randn(4096, 4096, device=dev)
torch.cuda.synchronize()
t = time.perf_counter()
c = a @ b
torch.cuda.synchronize()
dt = time.perf_counter() - t
print(f"{torch.cuda.get_device_name(0)}: 4096x4096 matmul in {dt * 1000:.1f} ms, sum {c.sum().item():.3e}")
