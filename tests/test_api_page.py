"""The API reference page documents every module of the package."""

import pkgutil
import re
from pathlib import Path

import mtlcourse

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_is_on_the_api_page():
    documented = set(re.findall(r"automodule:: ([\w.]+)", (ROOT / "book" / "api.md").read_text()))
    modules = {
        info.name
        for info in pkgutil.walk_packages(mtlcourse.__path__, "mtlcourse.")
        if not info.name.endswith("__main__")
    }
    packages_with_own_modules = {"mtlcourse.data", "mtlcourse.models"}  # documented module by module
    missing = sorted(modules - documented - packages_with_own_modules)
    assert not missing, f"add these modules to book/api.md: {missing}"
