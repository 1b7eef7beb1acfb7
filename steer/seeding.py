"""Per-step seeds: every training, fitting and data step draws from its own generator, so a
run resumed from a checkpoint continues exactly as an uninterrupted one would."""


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A distinct, reproducible seed for each (run seed, step, stream)."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63)
