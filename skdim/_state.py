"""In-memory snapshots of training state: roll back an interrupted epoch."""

from __future__ import annotations

import copy

import torch


def _snapshot(objective, disc, opt, d_opt) -> dict:
    """CPU copies of every weight and optimizer state, to roll back an epoch."""

    def cpu_state(module):
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    return {
        "objective": cpu_state(objective),
        "disc": None if disc is None else cpu_state(disc),
        "optimizers": copy.deepcopy(_state_to_cpu(opt, d_opt)),
    }


def _restore(snapshot: dict, objective, disc, opt, d_opt) -> None:
    objective.load_state_dict(snapshot["objective"])
    if disc is not None:
        disc.load_state_dict(snapshot["disc"])
    opt.load_state_dict(snapshot["optimizers"]["main"])
    if d_opt is not None:
        d_opt.load_state_dict(snapshot["optimizers"]["prior"])


def _state_to_cpu(opt, d_opt) -> dict:
    def to_cpu(obj):
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu()
        if isinstance(obj, dict):
            return {k: to_cpu(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [to_cpu(v) for v in obj]
        return obj

    return {
        "main": to_cpu(opt.state_dict()),
        "prior": None if d_opt is None else to_cpu(d_opt.state_dict()),
    }
