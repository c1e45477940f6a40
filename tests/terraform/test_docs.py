"""Documentation: the configuration page and the module READMEs list what the code has."""

import re

import pytest

from wiring import (
    MODULES,
    REPO,
    TERRAFORM,
    labelled,
)


# The inputs and outputs table lives in terraform/README.md only; the top-level README links to it.
@pytest.mark.parametrize("kind, source", [("variable", "variables.tf"), ("output", "outputs.tf")])
def test_readme_lists_every_root_input_and_output(kind, source):
    readme_path = TERRAFORM / "README.md"
    readme = readme_path.read_text()

    missing = [name for name, _ in labelled(TERRAFORM / source, kind) if f"`{name}`" not in readme]

    assert not missing, f"{readme_path} does not list: {missing}"


@pytest.mark.parametrize("module", MODULES + [TERRAFORM / "examples" / "complete"], ids=lambda p: p.name)
def test_every_module_has_the_standard_files_and_documents_its_inputs_and_outputs(module):
    readme = (module / "README.md").read_text()

    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / name).exists(), f"{module.relative_to(REPO)} has no {name}"
    for kind, source in (("variable", "variables.tf"), ("output", "outputs.tf")):
        missing = [name for name, _ in labelled(module / source, kind) if f"`{name}`" not in readme]
        assert not missing, f"{module.relative_to(REPO)}/README.md does not list: {missing}"


def test_ci_validates_every_module():
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    loop = re.search(r"for module in ([\w ]+); do", workflow).group(1).split()

    assert sorted(loop) == sorted(m.name for m in MODULES)
    assert "working-directory: terraform/examples/complete" in workflow
