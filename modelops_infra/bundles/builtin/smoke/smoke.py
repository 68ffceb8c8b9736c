"""Built-in smoke-test entrypoint: deterministic in (params, seed), stdlib only."""

import platform
import random


def run(params: dict[str, object], seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    beta, gamma, s, i, r = 0.3, 0.1, 0.99, 0.01, 0.0
    for _ in range(50):
        new_i = beta * s * i * (0.9 + 0.2 * rng.random())
        new_r = gamma * i
        s, i, r = s - new_i, i + new_i - new_r, r + new_r
    return {
        "ok": True,
        "echo": params,
        "seed": seed,
        "attack_rate": round(r + i, 6),
        "python": platform.python_version(),
    }
