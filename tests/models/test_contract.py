"""Contract over every registered model and preset: shape, gradients, counts, seeded init."""

from __future__ import annotations

import pytest
import torch

from ser_ray import models
from ser_ray.errors import UserError


def example_batch(model_name: str, options: dict, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *models.input_shape(model_name, **options))


@pytest.mark.parametrize("preset_name", models.preset_names())
def test_preset_forward_backward_and_count(preset_name: str) -> None:
    chosen = models.get_preset(preset_name)
    torch.manual_seed(0)
    model = models.build_preset(chosen)
    if chosen.expected_parameters is not None:
        assert models.count_parameters(model) == chosen.expected_parameters
    logits = model(example_batch(chosen.model, chosen.options))
    assert logits.shape == (2, chosen.num_classes)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    unreached = [name for name, p in model.named_parameters() if p.grad is None]
    assert unreached == []


def build_default_or_preset(kind: str, name: str) -> torch.nn.Module:
    return models.build(name, num_classes=5) if kind == "model" else models.preset(name)


SEEDED_BUILDS = [
    *[pytest.param("model", name, id=f"model:{name}") for name in models.names()],
    *[pytest.param("preset", name, id=f"preset:{name}") for name in models.preset_names()],
]


@pytest.mark.parametrize(("kind", "name"), SEEDED_BUILDS)
def test_init_is_seeded(kind: str, name: str) -> None:
    states = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        states.append(build_default_or_preset(kind, name).state_dict())
    first, same, other = states
    assert first.keys() == same.keys()
    assert all(torch.equal(first[key], same[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in other)


@pytest.mark.parametrize("model_name", models.names())
def test_unknown_option_names_the_option_and_the_valid_ones(model_name: str) -> None:
    with pytest.raises(UserError, match=r"unknown option 'no_such_option'; options of"):
        models.build(model_name, num_classes=4, no_such_option=1)


def test_unknown_model_and_preset_list_the_registered_names() -> None:
    with pytest.raises(UserError, match="registered: cnn1d_csa, ctmam, eca_cnn, eca_cnn_bilstm"):
        models.build("eca_cnnn", num_classes=4)
    with pytest.raises(UserError, match="presets: "):
        models.preset("ctmam-large")
