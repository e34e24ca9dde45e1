"""sbom.cdx.json: a CycloneDX software bill of materials of a build.

What runs on the device (the .tflite models, the LiteRT interpreter package and numpy, as
installed here and as each SSH device reported them) and what made the files (TensorFlow,
Keras, bedside-lite, Python): IEC 62304 asks each third-party component ("SOUP") to be
identified by name and version, FD&C Act section 524B asks for a machine-readable SBOM.

Built with cyclonedx-python-lib and validated against the CycloneDX 1.6 JSON schema by its
validator. The same inputs give the same bytes: the serial number is derived from the
content, and the document carries no wall-clock date (SOURCE_DATE_EPOCH pins one).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from pipeline.release.report.schema import BenchFailed, BenchOk, BuildReport

SBOM_FILE = "sbom.cdx.json"
PROJECT = "bedside-lite"
ROLE = f"{PROJECT}:role"  # property: device-runtime, model, build-environment
DEVICE = f"{PROJECT}:device"  # property: the device (`host` or a --device name)
RECORD = f"{PROJECT}:record_sha256"  # property: sha256 of pip's RECORD of the install
BUILD = "build-environment"
BUILD_PACKAGES = ("tensorflow", "keras", "numpy", "flatbuffers")
# a device_bench runtime module -> its pip distribution
RUNTIME_PACKAGES = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tensorflow",
}


@dataclass(frozen=True)
class Package:
    """One component: a Python distribution, a model file, or Python itself."""

    role: str
    name: str
    version: str | None
    where: str = "host"  # `host` or the device's name
    sha256: str | None = None  # the archive pip installed (direct_url.json) or a file's
    record_sha256: str | None = None  # pip's RECORD: the hash of every installed file
    kind: str = "library"  # library, machine-learning-model, platform
    purl: bool = True  # a PyPI package (has a package URL)

    @property
    def ref(self) -> str:
        return f"{self.role}:{self.where}:{self.name}@{self.version or 'unknown'}"


def installed(name: str, role: str) -> Package:
    """A distribution installed in this Python: version and what pip recorded of it."""
    try:
        dist = importlib_metadata.distribution(name)
    except importlib_metadata.PackageNotFoundError:
        return Package(role, name, None)
    archive = None
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct).get("archive_info") or {}
        hashes = info.get("hashes") or {}
        legacy = str(info.get("hash", ""))  # "sha256=..."
        archive = hashes.get("sha256") or (legacy[7:] if legacy.startswith("sha256=") else None)
    record = dist.read_text("RECORD")
    record_sha = hashlib.sha256(record.encode()).hexdigest() if record else None
    return Package(role, name, dist.version, sha256=archive, record_sha256=record_sha)


def _python(role: str, version: str | None, where: str = "host") -> Package:
    return Package(role, "python", version, where, kind="platform", purl=False)


def _host_runtime(report: BuildReport) -> str:
    """The interpreter package the host's bench used (ai-edge-litert when it did not run)."""
    for summary in report.bench.values():
        if isinstance(summary, BenchOk) and summary.runtime in RUNTIME_PACKAGES:
            return RUNTIME_PACKAGES[summary.runtime]
    return "ai-edge-litert"


def _reported(report: BuildReport) -> Iterator[Package]:
    """What other Pythons reported of themselves: --runtime-python and each SSH device."""
    seen: set[str] = set()
    for summary in report.bench.values():
        if not isinstance(summary, BenchOk | BenchFailed):
            continue
        legacy = summary.runtime_python
        if isinstance(legacy, BenchOk) and "runtime-python" not in seen:
            seen.add("runtime-python")
            name = RUNTIME_PACKAGES.get(legacy.runtime, legacy.runtime)
            yield Package("device-runtime", name, legacy.runtime_version, "runtime-python")
        for device, entry in sorted((summary.devices or {}).items()):
            info = entry.get("device") or {}
            if device in seen or not isinstance(info, Mapping) or "numpy" not in info:
                continue  # unreachable: it reported nothing
            seen.add(device)
            runtime = info.get("runtime")
            if runtime:
                package = RUNTIME_PACKAGES.get(runtime, str(runtime))
                yield Package("device-runtime", package, info.get("runtime_version"), device)
            yield Package("device-runtime", "numpy", info.get("numpy"), device)
            yield _python("device-runtime", info.get("python"), device)


def packages(report: BuildReport) -> list[Package]:
    """Every component of the build's SBOM, in a fixed order."""
    import platform

    from pipeline.release.manifest import tool_version

    models = [
        Package("model", Path(a.path).name, a.sha256[:12], sha256=a.sha256,
                kind="machine-learning-model", purl=False)
        for a in report.artifacts.values()
        if a.path.endswith(".tflite")
    ]  # fmt: skip
    device = [
        installed(_host_runtime(report), "device-runtime"),
        installed("numpy", "device-runtime"),
        *_reported(report),
    ]
    build = [installed(name, "build-environment") for name in BUILD_PACKAGES]
    project = installed(PROJECT, "build-environment")
    project = Package(project.role, PROJECT, tool_version(), record_sha256=project.record_sha256)
    return [
        *models,
        *device,
        *build,
        project,
        _python("build-environment", platform.python_version()),
    ]


def _component(package: Package) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from packageurl import PackageURL

    properties = [
        Property(name=ROLE, value=package.role),
        Property(name=DEVICE, value=package.where),
    ]
    if package.record_sha256:
        properties.append(Property(name=RECORD, value=package.record_sha256))
    if package.version is None:
        properties.append(Property(name=f"{PROJECT}:note", value="not installed or not reported"))
    return Component(
        name=package.name,
        version=package.version,
        type=ComponentType(package.kind),
        bom_ref=package.ref,
        # the build environment makes the files; it does not ship with them
        scope=ComponentScope.EXCLUDED if package.role == BUILD else ComponentScope.REQUIRED,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.sha256)]
        if package.sha256 else [],
        purl=PackageURL(type="pypi", name=package.name, version=package.version)
        if package.purl and package.version
        else None,
        properties=properties,
    )  # fmt: skip


def document(report: BuildReport, source_date: str | None = None) -> str:
    """The SBOM as CycloneDX 1.6 JSON text, validated against the schema.

    Raises:
        RuntimeError: the document does not validate (a defect of this module).
    """
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    from pipeline.release.manifest import tool_version

    parts = packages(report)
    content = json.dumps([vars(p) for p in parts], sort_keys=True)
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:{PROJECT}:sbom:{content}")
    subject = Component(
        name=f"{PROJECT}-release",
        version=tool_version(),
        type=ComponentType.APPLICATION,
        bom_ref="release",
        description=f"the files of a {PROJECT} build of {report.model.source}",
    )
    bom = Bom(serial_number=serial, metadata=BomMetaData(component=subject))
    components = {p.ref: _component(p) for p in parts}
    for component in components.values():
        bom.components.add(component)
    runtime = [c for ref, c in components.items() if ref.startswith("device-runtime:")]
    models = [c for ref, c in components.items() if ref.startswith("model:")]
    bom.register_dependency(subject, models)
    for model in models:
        bom.register_dependency(model, runtime)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    doc["metadata"].pop("timestamp", None)  # same inputs, same bytes
    if source_date is not None:
        doc["metadata"]["timestamp"] = source_date
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    _validate(text)
    return text


def _validate(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise RuntimeError(f"{SBOM_FILE} does not validate against CycloneDX 1.6: {error}")


def write(out: Path, report: BuildReport) -> Path:
    """Writes sbom.cdx.json into `out`."""
    from pipeline.release.manifest import source_date

    path = out / SBOM_FILE
    path.write_text(document(report, source_date()))
    return path
