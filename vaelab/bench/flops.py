"""FLOPs, counted one way: the package's counter (:mod:`vaelab.analysis.complexity`, a meta-device copy of
the model), re-exported here for the bench modules and scripts."""
from __future__ import annotations

from ..analysis.complexity import count_flops, meta_flops, model_flops

__all__ = ["count_flops", "meta_flops", "model_flops"]
