"""Read the course from content/ and report every problem with file, line and field.

Loading happens in three passes: each YAML file alone (syntax and shape), each
language as a whole (ids, references, placeholders), and the languages against
the default one (same ids, tracks, provisions and correct options everywhere).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from bot.lessons.course import Course, Language
from bot.lessons.models import (
    PLACEHOLDER_RE,
    PLACEHOLDERS,
    CourseMeta,
    CourseText,
    Module,
)

STRINGS_ADAPTER = TypeAdapter(dict[str, str])
Path_ = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in the content, pointing at where a writer can fix it."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ContentError(Exception):
    """The course cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        lines = [str(problem) for problem in self.problems]
        summary = f"the course content has {len(lines)} problem(s):"
        super().__init__("\n".join([summary, *lines]))


@dataclass
class Source:
    """One parsed YAML file with the node tree that knows every line."""

    path: Path
    label: str
    data: Any
    root: yaml.Node | None

    def line_of(self, where: Path_) -> int:
        node = self.root
        for key in where:
            child = _child(node, key)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1 if node is not None else 1


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _field_name(where: Path_) -> str:
    name = ""
    for key in where:
        name += f"[{key}]" if isinstance(key, int) else (f".{key}" if name else str(key))
    return name


@dataclass
class _Collector:
    root: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, source: Source, where: Path_, message: str) -> None:
        line = source.line_of(where)
        self.problems.append(Problem(source.label, line, _field_name(where), message))

    def read(self, path: Path) -> Source | None:
        label = _label(path, self.root)
        if not path.is_file():
            self.problems.append(Problem(label, 1, "", "file is missing"))
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            line = path.read_bytes()[: error.start].count(b"\n") + 1
            self.problems.append(Problem(label, line, "", "not UTF-8 text"))
            return None
        try:
            data = yaml.safe_load(text)
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            reason = getattr(error, "problem", None) or str(error)
            self.problems.append(Problem(label, line, "", f"not valid YAML: {reason}"))
            return None
        return Source(path, label, data, root)

    def parse(self, source: Source, model: type[BaseModel] | TypeAdapter) -> Any:
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_python(source.data)
            return model.model_validate(source.data)
        except ValidationError as error:
            for item in error.errors():
                where = tuple(item["loc"])
                self.add(source, where, _describe(item))
            return None


def _describe(item: dict[str, Any]) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "missing":
        return "required field is missing"
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] == "string_too_long":
        length = len(item["input"]) if isinstance(item.get("input"), str) else "?"
        return f"{message} (it has {length})"
    return message


def _label(path: Path, root: Path) -> str:
    """The path as a writer would type it: relative to here when it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def content_hash(root: Path) -> str:
    """A SHA-256 over every course file, so evidence can name the exact content taught."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def load_course(root: Path) -> Course:
    """Load and check the whole course; raise ContentError listing every problem."""
    collector = _Collector(root)
    if not root.is_dir():
        raise ContentError([Problem(str(root), 1, "", "is not a folder")])
    meta_source = collector.read(root / "course.yaml")
    meta = collector.parse(meta_source, CourseMeta) if meta_source else None
    if meta is None:
        raise ContentError(collector.problems)

    languages = {code: _load_language(collector, meta, code) for code in meta.languages}
    if collector.problems:
        raise ContentError(collector.problems)

    _compare_languages(collector, meta, languages)
    if collector.problems:
        raise ContentError(collector.problems)
    return Course(meta=meta, languages=languages, content_hash=content_hash(root), root=root)


def _load_language(collector: _Collector, meta: CourseMeta, code: str) -> Language | None:
    folder = collector.root / code
    text_source = collector.read(folder / "course.yaml")
    strings_source = collector.read(folder / "strings.yaml")
    text = collector.parse(text_source, CourseText) if text_source else None
    strings = collector.parse(strings_source, STRINGS_ADAPTER) if strings_source else None

    modules: list[Module] = []
    sources: dict[str, Source] = {}
    for module_id in meta.modules:
        source = collector.read(folder / f"{module_id}.yaml")
        module = collector.parse(source, Module) if source else None
        if module is None:
            continue
        if module.id != module_id:
            collector.add(source, ("id",), f"is {module.id!r} but the file is {module_id}.yaml")
        modules.append(module)
        sources[module_id] = source
    if len(modules) == len(meta.modules):
        _check_language(collector, meta, modules, sources)
    _check_strings(collector, strings_source, strings)

    if text is None or strings is None or len(modules) != len(meta.modules):
        return None
    sources["strings"] = strings_source
    return Language(code=code, text=text, strings=strings, modules=modules, sources=sources)


def _check_language(
    collector: _Collector, meta: CourseMeta, modules: list[Module], sources: dict[str, Source]
) -> None:
    lesson_ids = {lesson.id for module in modules for lesson in module.lessons}
    seen: dict[str, str] = {}
    for module in modules:
        source = sources[module.id]
        for where, item_id in _ids(module):
            if item_id in seen:
                collector.add(source, where, f"duplicate id {item_id!r} (also in {seen[item_id]})")
            seen.setdefault(item_id, source.label)
        for where, provision in _provisions(module):
            if provision not in meta.provisions:
                collector.add(source, where, f"unknown provision {provision!r}")
        for index, question in enumerate(module.quiz):
            if question.topic not in lesson_ids:
                where = ("quiz", index, "topic")
                collector.add(source, where, f"unknown lesson id {question.topic!r}")
        for where, name in _placeholders(module):
            if name not in PLACEHOLDERS:
                collector.add(source, where, f"unknown placeholder {{{name}}}")

    quiz = [question for module in modules for question in module.quiz]
    if modules and len(quiz) < meta.final_quiz.draw:
        source = sources[modules[-1].id]
        message = f"the final quiz draws {meta.final_quiz.draw} but the pool has {len(quiz)}"
        collector.add(source, ("quiz",), message)


def _check_strings(
    collector: _Collector, source: Source | None, strings: dict[str, str] | None
) -> None:
    for key, value in (strings or {}).items():
        for name in PLACEHOLDER_RE.findall(value):
            if key.startswith("placeholder.") and name in PLACEHOLDERS:
                collector.add(source, (key,), "a neutral phrase may not contain a placeholder")


def _ids(module: Module) -> Iterator[tuple[Path_, str]]:
    for index, lesson in enumerate(module.lessons):
        yield ("lessons", index, "id"), lesson.id
        for number, question in enumerate(lesson.questions):
            yield ("lessons", index, "questions", number, "id"), question.id
    for index, item in enumerate(module.checklist):
        yield ("checklist", index, "id"), item.id
    for index, question in enumerate(module.quiz):
        yield ("quiz", index, "id"), question.id


def _provisions(module: Module) -> Iterator[tuple[Path_, str]]:
    for index, lesson in enumerate(module.lessons):
        for number, provision in enumerate(lesson.provisions):
            yield ("lessons", index, "provisions", number), provision
    for index, item in enumerate(module.checklist):
        for number, provision in enumerate(item.provisions):
            yield ("checklist", index, "provisions", number), provision


def _texts(value: Any, where: Path_ = ()) -> Iterator[tuple[Path_, str]]:
    """Every string in a parsed module, with the path that leads to it."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _texts(getattr(value, name), (*where, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, (*where, index))
    elif isinstance(value, str):
        yield where, value


def _placeholders(module: Module) -> Iterator[tuple[Path_, str]]:
    for where, text in _texts(module):
        for name in PLACEHOLDER_RE.findall(text):
            yield where, name


def _compare_languages(
    collector: _Collector, meta: CourseMeta, languages: dict[str, Language | None]
) -> None:
    reference = languages[meta.default_language]
    for code, language in languages.items():
        if code == meta.default_language or language is None or reference is None:
            continue
        _compare_strings(collector, reference, language)
        for ours, theirs in zip(reference.modules, language.modules, strict=True):
            source = language.sources[theirs.id]
            for where, message in _module_differences(ours, theirs, reference.code):
                collector.add(source, where, message)


def _compare_strings(collector: _Collector, reference: Language, language: Language) -> None:
    source = language.sources["strings"]
    ref_source = reference.sources["strings"]
    for key in reference.strings.keys() - language.strings.keys():
        collector.add(source, (), f"string {key!r} is missing (present in {reference.code})")
    for key in language.strings.keys() - reference.strings.keys():
        collector.add(ref_source, (), f"string {key!r} is missing (present in {language.code})")
    for key in reference.strings.keys() & language.strings.keys():
        ours = set(PLACEHOLDER_RE.findall(reference.strings[key]))
        theirs = set(PLACEHOLDER_RE.findall(language.strings[key]))
        if ours != theirs:
            message = f"uses {sorted(theirs)} but {reference.code} uses {sorted(ours)}"
            collector.add(source, (key,), message)


def _shape(value: Any, where: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """The language-neutral facts of a module: ids, tracks, provisions, correctness."""
    neutral = {"id", "track", "provisions", "correct", "topic", "requires"}
    optional_text = {"reflection", "media"}
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name in neutral:
                yield (*where, name), item
            elif name in optional_text:
                yield (*where, name), item is not None
            else:
                yield from _shape(item, (*where, name))
    elif isinstance(value, list):
        yield (*where, "count"), len(value)
        for index, item in enumerate(value):
            yield from _shape(item, (*where, index))


def _module_differences(ours: Module, theirs: Module, code: str) -> Iterator[tuple[Path_, str]]:
    missing = list(_missing_ids(ours, theirs, code))
    if missing:
        yield from missing
        return
    reference = dict(_shape(ours))
    for where, value in _shape(theirs):
        if where in reference and reference[where] != value:
            yield where, f"{value!r} differs from {code} ({reference[where]!r})"
    yield from _placeholder_sets(ours, theirs)


def _missing_ids(ours: Module, theirs: Module, code: str) -> Iterator[tuple[Path_, str]]:
    for part in ("lessons", "checklist", "quiz"):
        expected = [item.id for item in getattr(ours, part)]
        found = [item.id for item in getattr(theirs, part)]
        for item_id in expected:
            if item_id not in found:
                yield (part,), f"{item_id!r} is missing (present in {code})"
        for item_id in found:
            if item_id not in expected:
                yield (part,), f"{item_id!r} is not in {code}"
        if not set(found) ^ set(expected) and found != expected:
            yield (part,), f"the order differs from {code}"


def _placeholder_sets(ours: Module, theirs: Module) -> Iterator[tuple[Path_, str]]:
    reference = {where: set(PLACEHOLDER_RE.findall(text)) for where, text in _texts(ours)}
    for where, text in _texts(theirs):
        found = set(PLACEHOLDER_RE.findall(text))
        expected = reference.get(where)
        if expected is not None and found != expected:
            yield where, f"uses placeholders {sorted(found)}, the other language {sorted(expected)}"
