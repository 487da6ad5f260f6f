"""Card checks: the official Adaptive Card schema and Microsoft's own JavaScript parser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator, ValidationError

HERE = Path(__file__).parent
# shared/ lies beside the checkout: /work/shared next to /work/main, and likewise in CI.
SCHEMA_DIR = Path(__file__).parents[3] / "shared" / "schemas"
VALIDATE_JS = HERE / "validate.js"
NODE_MODULES = HERE / "node_modules"
NPM_HINT = "run `npm ci --prefix tests/cards` from the repository root"

# The one Teams extension outside the schema that a card may carry, with its only value.
TEAMS_EXTENSION = {"msteams": {"width": "Full"}}
# Teams desktop and web render up to 1.5; a newer card falls back to its fallbackText.
MAX_VERSION = "1.5"

Card = dict[str, Any]


class CardToolingError(RuntimeError):
    """A checker cannot run here, which must fail loudly rather than pass a card unchecked."""


def schema_versions() -> list[str]:
    """Card versions with a schema file, so an error can list what would work."""
    names = (path.name for path in SCHEMA_DIR.glob("adaptive-card-*.json"))
    found = (re.fullmatch(r"adaptive-card-(\d+\.\d+)\.0\.json", name) for name in names)
    return sorted((match[1] for match in found if match), key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    """Orders "1.10" after "1.9", which string order would not."""
    return tuple(int(part) for part in version.split("."))


@cache
def _validator(version: str) -> Draft6Validator:
    """Loads one version's schema once: each file is read by many tests."""
    schema = json.loads((SCHEMA_DIR / f"adaptive-card-{version}.0.json").read_text("utf-8"))
    Draft6Validator.check_schema(schema)
    return Draft6Validator(schema)


def schema_errors(card: Card) -> list[str]:
    """Lists how a card breaks its own version's official schema, so Teams won't reject it."""
    if not isinstance(card, dict):
        return ["/: a card must be a JSON object"]
    if not SCHEMA_DIR.is_dir():
        raise CardToolingError(f"Adaptive Card schemas not found at {SCHEMA_DIR}")
    version = card.get("version")
    known = schema_versions()
    if version not in known:
        return [f"/version: no schema for card version {version!r} (known: {', '.join(known)})"]
    problems = _extension_problems(card) + _top_level_problems(card)
    core = {key: value for key, value in card.items() if key not in TEAMS_EXTENSION}
    errors = sorted(_validator(version).iter_errors(core), key=_pointer)
    return problems + [_describe(leaf) for error in errors for leaf in _leaves(error)]


def _extension_problems(card: Card) -> list[str]:
    """Allows the documented Teams extension with exactly its documented value, nothing more."""
    return [
        f"/{key}: only {allowed!r} is allowed here, got {card[key]!r}"
        for key, allowed in TEAMS_EXTENSION.items()
        if key in card and card[key] != allowed
    ]


def _top_level_problems(card: Card) -> list[str]:
    """The schema describes "type" as mandatory on the root card but does not enforce it."""
    return [] if "type" in card else ["/: 'type' is a required property (must be AdaptiveCard)"]


def _leaves(error: ValidationError) -> list[ValidationError]:
    """Follows anyOf to the branch of the element's own type, so messages name the real fault."""
    branch = _branch_for_type(error) if error.context else None
    if branch is None:
        return [error]
    return [leaf for sub in branch for leaf in _leaves(sub)]


def _branch_for_type(error: ValidationError) -> list[ValidationError] | None:
    """The errors of the single anyOf branch whose "type" matched, if exactly one did."""
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context or []:
        branches[sub.schema_path[0]].append(sub)
    matching = [subs for subs in branches.values() if not any(map(_wrong_type, subs))]
    return matching[0] if len(matching) == 1 else None


def _wrong_type(error: ValidationError) -> bool:
    """True when a branch failed only because it describes another element type."""
    return list(error.relative_path) == ["type"] or (
        error.validator == "required" and "'type'" in error.message
    )


def _pointer(error: ValidationError) -> str:
    """A JSON-pointer-like path, so each message says where in the card it applies."""
    return "/" + "/".join(str(part) for part in error.absolute_path)


def _describe(error: ValidationError) -> str:
    """One readable line per fault; anyOf messages otherwise repeat the whole element."""
    instance = error.instance
    enums = [sub.message for sub in error.context or [] if sub.validator == "enum"]
    if error.validator == "anyOf" and isinstance(instance, dict) and "type" in instance:
        message = f"type {instance['type']!r} is not allowed here in this card version"
    elif error.validator == "anyOf" and enums:
        message = enums[0]
    else:
        message = error.message
    return f"{_pointer(error)}: {message[:300]}"


def library_problems(
    cards: list[tuple[str, Card]], max_version: str = MAX_VERSION
) -> dict[str, list[str]]:
    """Runs Microsoft's parser over a batch in one node process, keeping the suite fast."""
    names = [name for name, _ in cards]
    if len(set(names)) != len(names):
        raise ValueError("card names in one batch must be unique")
    node = _node()
    batch = [{"name": name, "card": card} for name, card in cards]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cards.json"
        path.write_text(json.dumps(batch), "utf-8")
        command = [node, str(VALIDATE_JS), str(path), "--max-version", max_version]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, 1):
        raise CardToolingError(f"validate.js failed ({done.returncode}): {done.stderr.strip()}")
    results = _results(done.stdout)
    missing = set(names) - results.keys()
    if missing:
        raise CardToolingError(f"validate.js reported nothing for {sorted(missing)}")
    return results


def _node() -> str:
    """Finds node and the installed library, or says exactly how to get them."""
    node = shutil.which("node")
    if node is None:
        raise CardToolingError(f"node is not on PATH: install Node.js 18+, then {NPM_HINT}")
    if not (NODE_MODULES / "adaptivecards" / "package.json").is_file():
        raise CardToolingError(f"the adaptivecards package is not installed: {NPM_HINT}")
    return node


def _results(stdout: str) -> dict[str, list[str]]:
    """Merges each card's errors and warnings, since a clean card must have neither."""
    results: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        report = json.loads(line)
        warnings = [f"warning: {text}" for text in report["warnings"]]
        results[report["name"]] = report["errors"] + warnings
    return results


def library_problems_or_skip(cards: list[tuple[str, Card]]) -> dict[str, list[str]]:
    """As library_problems; without Node.js the test skips, saying why (never in CI)."""
    import os

    import pytest

    try:
        return library_problems(cards)
    except CardToolingError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Adaptive Cards library not available: {error}")


def schema_errors_or_skip(card: Card) -> list[str]:
    """As schema_errors; without ../shared/schemas beside the clone it skips (never in CI)."""
    import os

    import pytest

    if not SCHEMA_DIR.is_dir() and not os.environ.get("CI"):
        pytest.skip(f"Adaptive Card schemas not found at {SCHEMA_DIR} (they come with ../shared)")
    return schema_errors(card)
