"""`medmnist:NAME[@SIZE]`: the MedMNIST datasets on offer, their sizes and checksums.

Parsed while the job config is read (an unknown dataset or size is a config error before
any data is touched), so it lives in `config`; `pipeline.data.loaders.medmnist` fetches and
reads the files. The MD5s are those the official `medmnist` package (MedMNIST/MedMNIST,
`medmnist/info.py`, version 3.0.2) lists for Zenodo record 10519652.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.errors import ConfigError

PREFIX = "medmnist:"
ZENODO_RECORD = "10519652"
URL = "https://zenodo.org/records/{record}/files/{file}?download=1"
SIZES_2D = (28, 64, 128, 224)
SIZES_3D = (28, 64)


@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST dataset: its class names and official MD5 per image size."""

    labels: tuple[str, ...]
    md5: dict[int, str]
    positive_class: int = 1  # the clinically positive class of a binary task

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.md5)


_ORGANS = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)

DATASETS: dict[str, MedMNISTInfo] = {
    "pathmnist": MedMNISTInfo(
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
        {
            28: "a8b06965200029087d5bd730944a56c1",
            64: "55aa9c1e0525abe5a6b9d8343a507616",
            128: "ac42d08fb904d92c244187169d1fd1d9",
            224: "2c51a510bcdc9cf8ddb2af93af1eadec",
        },
    ),
    "dermamnist": MedMNISTInfo(
        (
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
        {
            28: "0744692d530f8e62ec473284d019b0c7",
            64: "b70a2f5635c6199aeaa28c31d7202e1f",
            128: "2defd784463fa5243564e855ed717de1",
            224: "8974907d8e169bef5f5b96bc506ae45d",
        },
    ),
    "octmnist": MedMNISTInfo(
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
        {
            28: "c68d92d5b585d8d81f7112f81e2d0842",
            64: "e229e9440236b774d9f0dfef9d07bdaf",
            128: "0a97e76651ace45c5d943ee3f65b63ae",
            224: "abc493b6d529d5de7569faaef2773ba3",
        },
    ),
    "pneumoniamnist": MedMNISTInfo(
        ("normal", "pneumonia"),
        {
            28: "28209eda62fecd6e6a2d98b1501bb15f",
            64: "8f4eceb4ccffa70c672198ea285246c6",
            128: "05b46931834c231683c68f40c47b2971",
            224: "d6a3c71de1b945ea11211b03746c1fe1",
        },
    ),
    "retinamnist": MedMNISTInfo(
        ("0", "1", "2", "3", "4"),
        {
            28: "bd4c0672f1bba3e3a89f0e4e876791e4",
            64: "afda852cc34dcda56f86ad2b2457dbcc",
            128: "e48e916a24454daf90583d4e6efb1a18",
            224: "eae7e3b6f3fcbda4ae613ebdcbe35348",
        },
    ),
    "breastmnist": MedMNISTInfo(
        ("malignant", "normal, benign"),
        {
            28: "750601b1f35ba3300ea97c75c52ff8f6",
            64: "742edef2a1fd1524b2efff4bd7ba9364",
            128: "363e4b3f8d712e9b5de15470a2aaadf1",
            224: "b56378a6eefa9fed602bb16d192d4c8b",
        },
        positive_class=0,
    ),  # malignant
    "bloodmnist": MedMNISTInfo(
        (
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        {
            28: "7053d0359d879ad8a5505303e11de1dc",
            64: "2b94928a2ae4916078ca51e05b6b800b",
            128: "adace1e0ed228fccda1f39692059dd4c",
            224: "b718ff6835fcbdb22ba9eacccd7b2601",
        },
    ),
    "tissuemnist": MedMNISTInfo(
        (
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ),
        {
            28: "ebe78ee8b05294063de985d821c1c34b",
            64: "123ece2eba09d0aa5d698fda57103344",
            128: "61b955355d7425a89687b06cca3ce0c2",
            224: "b077128c4a949f0a4eb01517f9037b9c",
        },
    ),
    "organamnist": MedMNISTInfo(
        _ORGANS,
        {
            28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
            64: "2dcccc29b88e6da5a01161ef20cda288",
            128: "eeae80d0a227a8d099027e1b3cfd3b60",
            224: "50747347e05c87dd3aaf92c49f9f3170",
        },
    ),
    "organcmnist": MedMNISTInfo(
        _ORGANS,
        {
            28: "b9ceb9546e10131b32923c5bbeaea2b1",
            64: "3ce34a8724ea6f548e6db4744d03b6a9",
            128: "773c1f009daa3fe5d9a2a201b2a7ed94",
            224: "050f5e875dc056f6768abf94ec9995d1",
        },
    ),
    "organsmnist": MedMNISTInfo(
        _ORGANS,
        {
            28: "9ab87b696fb54e2a387ebe992d6ed5f1",
            64: "53a6d115339d874c25e309a994ff46d3",
            128: "ded0c5fa01a95dc4978b956f613e9b8e",
            224: "b354719e553fbbb2513d5533f52a4cb1",
        },
    ),
    "organmnist3d": MedMNISTInfo(
        (
            "liver",
            "kidney-right",
            "kidney-left",
            "femur-right",
            "femur-left",
            "bladder",
            "heart",
            "lung-right",
            "lung-left",
            "spleen",
            "pancreas",
        ),
        {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"},
    ),
    "nodulemnist3d": MedMNISTInfo(
        ("benign", "malignant"),
        {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"},
    ),
    "adrenalmnist3d": MedMNISTInfo(
        ("normal", "hyperplasia"),
        {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"},
    ),
    "fracturemnist3d": MedMNISTInfo(
        ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
        {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"},
    ),
    "vesselmnist3d": MedMNISTInfo(
        ("vessel", "aneurysm"),
        {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"},
    ),
    "synapsemnist3d": MedMNISTInfo(
        ("inhibitory synapse", "excitatory synapse"),
        {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"},
    ),
}


@dataclass(frozen=True)
class MedMNISTSpec:
    """A parsed `medmnist:NAME[@SIZE]`."""

    name: str
    size: int

    @property
    def info(self) -> MedMNISTInfo:
        return DATASETS[self.name]

    @property
    def filename(self) -> str:
        return f"{self.name}.npz" if self.size == 28 else f"{self.name}_{self.size}.npz"

    @property
    def url(self) -> str:
        return URL.format(record=ZENODO_RECORD, file=self.filename)


def is_spec(source: str | os.PathLike[str] | None) -> bool:
    return source is not None and str(source).lower().startswith(PREFIX)


def parse_spec(text: str) -> MedMNISTSpec:
    """Parses `medmnist:NAME[@SIZE]` (SIZE 28 by default).

    Raises:
        ConfigError: unknown dataset or size.
    """
    body = str(text)[len(PREFIX) :].strip().lower()
    name, _, size_text = body.partition("@")
    if name == "chestmnist":
        raise ConfigError(
            "medmnist:chestmnist is multi-label (14 findings per image); bedside-lite "
            "evaluates single-label classifiers. Pick another MedMNIST dataset."
        )
    if name not in DATASETS:
        raise ConfigError(
            f"Unknown MedMNIST dataset '{name}' in --data {text}; expected one of "
            f"{', '.join(sorted(DATASETS))}, e.g. --data medmnist:breastmnist@64."
        )
    info = DATASETS[name]
    try:
        size = int(size_text) if size_text else 28
    except ValueError:
        size = -1
    if size not in info.sizes:
        raise ConfigError(
            f"MedMNIST {name} comes in sizes {', '.join(map(str, info.sizes))}; received "
            f"'{size_text}' in --data {text}. Use e.g. --data medmnist:{name}@{info.sizes[1]}."
        )
    return MedMNISTSpec(name, size)
