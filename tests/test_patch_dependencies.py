"""The diffusers functions the patches rely on keep the parameters the patches were written against."""

import diffusers
import pytest

from ltx2gen import patch_dependencies


def test_every_patched_diffusers_function_has_the_parameters_its_patch_was_written_against():
    changed = patch_dependencies.changed_dependencies()
    assert not changed, "diffusers changed under this product's patches:\n" + "\n".join(changed)


def test_the_patches_name_the_diffusers_release_they_were_written_against():
    assert diffusers.__version__ == patch_dependencies.DIFFUSERS_VERSION, (
        f"diffusers {diffusers.__version__} is installed; the patches were checked against "
        f"{patch_dependencies.DIFFUSERS_VERSION}: review each patch in ltx2gen/patches.py, then update "
        "DIFFUSERS_VERSION in ltx2gen/patch_dependencies.py")


def test_a_changed_signature_is_reported_with_what_relies_on_it(monkeypatch):
    dependency = patch_dependencies.Dependency("diffusers.models.attention:FeedForward.forward",
                                               "self, hidden_states", "token_wise_layers_in_chunks")
    missing = patch_dependencies.Dependency("diffusers.models.attention:NoSuchLayer.forward", "self", "nothing")
    monkeypatch.setattr(patch_dependencies, "DEPENDS_ON", (dependency, missing))
    changed = patch_dependencies.changed_dependencies()
    assert len(changed) == 2
    assert "(self, hidden_states, *args, **kwargs), written against (self, hidden_states)" in changed[0]
    assert changed[0].endswith("relied on by token_wise_layers_in_chunks")
    assert "NoSuchLayer.forward: (missing" in changed[1]


@pytest.mark.parametrize("function, expected", [
    (lambda a, b=2, *args, c, **kwargs: None, "a, b=2, *args, c, **kwargs"),
    (lambda x, *, backend=None: None, "x, *, backend=None"),
])
def test_parameters_keep_names_defaults_and_kinds(function, expected):
    assert patch_dependencies.parameters(function) == expected
