"""The data and weights API: real data when cached, a stand-in that says so offline, an error at FULL scale.

No test opens a socket: ``socket.create_connection`` records and refuses every call, and the caches
(datasets, Hugging Face hub, torch hub, OpenCLIP) point at empty temporary folders.
"""

import ast
import dataclasses
import json
import pickle
import re
import socket

import numpy as np
import pytest
import torch

from vitcourse import data, pretrained
from vitcourse.data import COLOURS, PHOTOS, SHAPE_CLASSES, DataUnavailable, load_cifar10, load_dataset, make_shapes
from vitcourse.pretrained import WeightsUnavailable, load_open_clip, load_timm, load_transformers
from vitcourse.scale import Scale
from vitgrade import weeks


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, empty caches, SMOKE scale. Returns the list of attempted connections."""
    import huggingface_hub.constants

    calls = []

    def refuse(address, *args, **kwargs):
        calls.append(tuple(address))
        raise OSError("tests never use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("VIT_OFFLINE", "1")
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # OpenCLIP's ~/.cache/clip
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(data, "SCALE", Scale.SMOKE)
    monkeypatch.setattr(pretrained, "SCALE", Scale.SMOKE)
    yield calls
    assert not calls, f"a test tried to connect to {calls}"


def full_scale(monkeypatch):
    monkeypatch.setattr(data, "SCALE", Scale.FULL)
    monkeypatch.setattr(pretrained, "SCALE", Scale.FULL)


# -- real datasets offline: stand-ins at SMOKE, errors at FULL ------------------------------------------
REAL = {  # name: (title, stand-in source, image shape of the stand-in at the default size, in memory)
    "cifar10": ("CIFAR-10", "digits-standin", (3, 32, 32), True),
    "food101": ("Food-101", "shapes-standin", (3, 224, 224), False),
    "eurosat": ("EuroSAT", "shapes-standin", (3, 64, 64), False),
    "pathmnist": ("PathMNIST", "shapes-standin", (3, 28, 28), True),
}


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("download", [None, True])
def test_real_dataset_offline_falls_back_and_says_why(name, download, capsys):
    title, source, shape, in_memory = REAL[name]
    d = load_dataset(name, n_train=16, n_test=8, download=download)
    printed = capsys.readouterr().out.strip()
    assert printed == d.note and len(printed.splitlines()) == 1
    assert printed.startswith(f"Data: NOT {title}. Using the offline stand-in")
    assert f"Numbers below are about this stand-in, not {title}." in printed
    why = "offline (VIT_OFFLINE is set)" if download else "downloads are off at SMOKE scale"
    assert why in printed
    assert d.is_standin and d.source == source and d.in_memory == in_memory
    assert (len(d.train), len(d.test)) == (16, 8)
    image, label = d.train[0]
    assert tuple(image.shape) == shape and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert label.dtype == torch.int64 and label.ndim == 0 and 0 <= int(label) < len(d.classes)


@pytest.mark.parametrize("name, host", [
    ("cifar10", ("www.cs.toronto.edu", 443)), ("food101", ("data.vision.ee.ethz.ch", 80)),
    ("eurosat", ("huggingface.co", 443)), ("bloodmnist", ("zenodo.org", 443))])
def test_the_online_check_dials_the_dataset_host_once(name, host, monkeypatch, offline, capsys):
    monkeypatch.setenv("VIT_OFFLINE", "0")  # "0" means: not forced offline
    d = load_dataset(name, n_train=4, n_test=4, download=True)
    assert offline == [host]
    offline.clear()
    assert d.is_standin and f"{host[0]} did not answer within 1.5 s" in capsys.readouterr().out


@pytest.mark.parametrize("value, forced", [("1", True), ("yes", True), ("0", False), ("false", False), ("", False)])
def test_vit_offline_values(value, forced, monkeypatch, offline):
    monkeypatch.setenv("VIT_OFFLINE", value)
    assert data.forced_offline() is forced
    assert data.online(host="example.org") is False  # the fixture refuses every connection
    assert offline == ([] if forced else [("example.org", 443)])  # forced offline: not even tried
    offline.clear()


@pytest.mark.parametrize("name", REAL)
def test_full_scale_never_falls_back(name, monkeypatch, tmp_path, capsys):
    full_scale(monkeypatch)
    with pytest.raises(DataUnavailable) as error:
        load_dataset(name)
    message = str(error.value)
    assert REAL[name][0] in message and str(tmp_path / "data") in message
    assert "VIT_DATA_DIR" in message and f"load_dataset({name!r}, download=True)" in message
    assert isinstance(error.value, RuntimeError) and capsys.readouterr().out == ""
    assert load_dataset(name, n_train=2, n_test=2, require=False).is_standin  # explicitly accepting a stand-in


def test_require_at_smoke_raises():
    with pytest.raises(DataUnavailable, match="require=True"):
        load_dataset("eurosat", require=True)


def test_unknown_and_unsupported_names_are_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="multi-label"):
        load_dataset("chestmnist")
    with pytest.raises(ValueError, match="not a 2D MedMNIST flag"):
        load_dataset("organmnist3d")


# -- real datasets from a cache folder ---------------------------------------------------------------
def write_cifar10(root, n=3):
    """A tiny CIFAR-10 in torchvision's on-disk format: python pickles of (n, 3072) uint8 rows."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batches[name] = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f)
    return batches


def test_cached_cifar10_is_read_as_the_real_thing(tmp_path, monkeypatch, capsys):
    batches = write_cifar10(tmp_path / "data")
    full_scale(monkeypatch)  # cached data needs neither a download nor a stand-in
    d = load_cifar10()
    assert capsys.readouterr().out.strip() == f"Data: CIFAR-10 from {tmp_path / 'data'} (15 train / 3 test images)."
    assert d.is_cifar10 and not d.is_standin and d.classes == data.CIFAR10_CLASSES
    row = batches["data_batch_1"]["data"][0]  # 1024 red, then 1024 green, then 1024 blue values, row by row
    assert d.x_train[0, 0, 0, 1] == row[1] / 255 and d.x_train[0, 1, 0, 0] == row[1024] / 255
    assert d.x_train[0, 2, 31, 31] == row[3071] / 255
    expected = torch.from_numpy(batches["test_batch"]["data"]).reshape(3, 3, 32, 32).float() / 255
    assert torch.equal(d.x_test, expected) and d.y_test.tolist() == batches["test_batch"]["labels"]
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    small = load_dataset("cifar10", n_train=4, image_size=16, channels=1)
    assert small.x_train.shape == (4, 1, 16, 16) and small.source == "cifar10"


def test_cached_medmnist_npz_is_read_with_its_labels(tmp_path):
    folder = tmp_path / "data" / "medmnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for file, side in (("breastmnist.npz", 28), ("breastmnist_128.npz", 128)):
        arrays = {f"{split}_{kind}": (rng.integers(0, 256, (n, side, side), dtype=np.uint8) if kind == "images"
                                      else rng.integers(0, 2, (n, 1), dtype=np.uint8))
                  for split, n in (("train", 5), ("val", 2), ("test", 3)) for kind in ("images", "labels")}
        np.savez_compressed(folder / file, **arrays)
        d = load_dataset("breastmnist", image_size=side)
        assert d.source == "breastmnist" and d.classes == ("malignant", "normal, benign")
        image, label = d.test[1]
        assert torch.equal(image, torch.from_numpy(arrays["test_images"][1]).float().div(255).expand(3, -1, -1))
        assert int(label) == arrays["test_labels"][1, 0] and label.dtype == torch.int64
        assert d.in_memory == (side == 28)  # 128 px images are decoded on access
    assert d.x_train is None and len(d.train) == 5


def write_jpeg(path, size, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


def test_cached_food101_yields_resized_squares(tmp_path):
    root = tmp_path / "data" / "food-101"
    colours = {"apple_pie": (200, 40, 40), "sushi": (40, 40, 200)}
    meta = {"train": {c: [f"{c}/{i}" for i in range(2)] for c in colours}, "test": {c: [f"{c}/9"] for c in colours}}
    for split, files in meta.items():
        (root / "meta").mkdir(parents=True, exist_ok=True)
        (root / "meta" / f"{split}.json").write_text(json.dumps(files))
        for c, names in files.items():
            for i, name in enumerate(names):
                write_jpeg(root / "images" / f"{name}.jpg", (60 + 20 * i, 40), colours[c])  # not square
    d = load_dataset("food101", image_size=24)
    assert not d.is_standin and not d.in_memory and d.classes == ("apple_pie", "sushi")
    assert (len(d.train), len(d.test)) == (4, 2)
    for image, label in [*d.train, *d.test]:
        assert image.shape == (3, 24, 24) and 0 <= image.min() and image.max() <= 1
        colour = torch.tensor(colours[d.classes[int(label)]]) / 255
        assert torch.allclose(image.mean(dim=(1, 2)), colour, atol=0.02)


def test_cached_eurosat_has_a_fixed_disjoint_split(tmp_path):
    for c in ("Forest", "River"):
        for i in range(5):
            write_jpeg(tmp_path / "data" / "eurosat" / "2750" / c / f"{c}_{i}.jpg", (64, 64), (0, 120, 0))
    first, again = load_dataset("eurosat", seed=0), load_dataset("eurosat", seed=5)
    assert first.source == "eurosat" and first.classes == ("Forest", "River")
    assert (len(first.train), len(first.test)) == (8, 2)  # EUROSAT_TEST_FRACTION of 10 images
    assert set(first.test.indices).isdisjoint(first.train.indices)
    assert first.test.indices == again.test.indices  # the split does not depend on the seed


def test_a_missing_dataset_is_fetched_when_allowed_and_online(tmp_path, monkeypatch, capsys):
    fetched = []
    spec = data._REAL["cifar10"]
    monkeypatch.setitem(data._REAL, "cifar10", dataclasses.replace(
        spec, fetch=lambda root: fetched.append(root) or write_cifar10(root)))  # a download, faked
    monkeypatch.setattr(data, "online", lambda **host: True)
    monkeypatch.delenv("VIT_OFFLINE")
    assert load_dataset("cifar10", verbose=False).is_standin and fetched == []  # SMOKE: no download by default
    full_scale(monkeypatch)
    d = load_dataset("cifar10")
    assert fetched == [tmp_path / "data"] and d.is_cifar10 and len(d.train) == 15
    assert load_dataset("cifar10").is_cifar10 and len(fetched) == 1  # now cached: not fetched again


# -- generated data ---------------------------------------------------------------------------------
def test_make_shapes_is_deterministic_balanced_and_labelled():
    s = make_shapes(80, image_size=32, seed=3)
    assert s.images.shape == (80, 3, 32, 32) and s.images.dtype == torch.float32
    assert 0 <= s.images.min() and s.images.max() <= 1
    assert torch.bincount(s.labels, minlength=len(SHAPE_CLASSES)).tolist() == [10] * 8
    assert torch.equal(s.images, make_shapes(80, image_size=32, seed=3).images)
    assert not torch.equal(s.images, make_shapes(80, image_size=32, seed=4).images)
    assert ((s.centres - s.sizes[:, None] >= 0) & (s.centres + s.sizes[:, None] <= 32)).all()  # fully inside
    assert set(s.colour_names) <= set(COLOURS) and s.shape_names == [SHAPE_CLASSES[i] for i in s.labels]
    assert s.captions()[0] == f"a drawing of a {s.colour_names[0]} {s.shape_names[0]}"
    for i in range(80):  # the pixel at a shape's centre has its colour, except inside a ring's hole
        x, y = s.centres[i].long().tolist()
        centre, colour = s.images[i, :, y, x], torch.tensor(COLOURS[s.colour_names[i]])
        assert torch.allclose(centre, colour, atol=1e-6) != (s.shape_names[i] == "ring")
    noisy = make_shapes(80, image_size=32, seed=3, noise=0.1)
    assert torch.equal(noisy.images, make_shapes(80, image_size=32, seed=3, noise=0.1).images)
    assert not torch.equal(noisy.images, s.images) and 0 <= noisy.images.min() and noisy.images.max() <= 1


def test_shapes_drawn_on_access_match_make_shapes():
    d = load_dataset("food101", n_train=10, n_test=5, image_size=40, seed=1, verbose=False)  # lazy stand-in
    reference = make_shapes(10, image_size=40, seed=2)  # train uses seed 2 * seed, test 2 * seed + 1
    for i in (0, 7, -1):
        image, label = d.train[i]
        assert torch.allclose(image, reference.images[i], atol=1e-6) and label == reference.labels[i]
    with pytest.raises(IndexError):
        d.train[10]


def test_generated_datasets_sizes_seeds_and_channels(capsys):
    shapes = load_dataset("shapes", image_size=16)
    assert (len(shapes.train), len(shapes.test)) == data.SHAPES_SIZES and not shapes.is_standin
    assert shapes.x_train.shape == (2000, 3, 16, 16) and shapes.classes == SHAPE_CLASSES
    assert "generated offline" in capsys.readouterr().out
    colour = load_dataset("digits", n_train=50, seed=1)
    grey = load_dataset("digits", n_train=50, seed=1, channels=1, image_size=32)
    assert colour.x_train.shape == (50, 3, 32, 32) and grey.x_train.shape == (50, 1, 32, 32)
    luma = (colour.x_train * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(grey.x_train, luma, atol=1e-6) and torch.equal(grey.y_train, colour.y_train)
    assert not torch.equal(load_dataset("digits", n_train=50, seed=2).y_train, colour.y_train)


def test_load_cifar10_keeps_the_week2_contract(capsys):
    d = load_cifar10(n_test=100)
    assert d.x_train.shape == (1498, 3, 32, 32) and d.x_test.shape == (100, 3, 32, 32)
    assert d.classes == data.DIGIT_CLASSES and d.source == "digits-standin" and not d.is_cifar10
    assert capsys.readouterr().out == (
        "Data: NOT CIFAR-10. Using the offline stand-in: scikit-learn digits as 3x32x32 colour images (1498 train / "
        f"100 test, 10 classes), because CIFAR-10 is not in {data.cache_dir()} and downloads are off at SMOKE scale "
        "(pass download=True or run at FULL scale to fetch it, 170 MB). Numbers below are about this stand-in, "
        "not CIFAR-10.\n")


def test_sample_photos():
    photos = data.sample_photos()
    assert [name for name, _ in photos] == list(PHOTOS)
    for _, image in photos:
        assert image.ndim == 3 and image.shape[0] == 3 and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.5
    assert dict(photos)["chelsea"].shape == (3, 300, 451)
    for _, image in data.sample_photos(size=48, names=("chelsea", "rocket")):
        assert image.shape == (3, 48, 48) and 0 <= image.min() and image.max() <= 1


# -- pretrained weights -------------------------------------------------------------------------------
def test_timm_offline_stand_in_is_small_and_has_the_requested_head(capsys):
    model, info = load_timm("vit_base_patch16_224", num_classes=7)
    printed = capsys.readouterr().out.strip()
    assert printed == info.note and printed.startswith("Weights: NOT pretrained.") and "meaningless" in printed
    assert info.is_standin and not info.is_pretrained and info.source == "random-init stand-in"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000 and not model.training
    assert model.patch_embed.patch_size == (16, 16)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 224, 224)).shape == (2, 7)


def test_timm_checks_the_hub_host_when_not_forced_offline(monkeypatch, offline):
    monkeypatch.delenv("VIT_OFFLINE")
    _, info = load_timm("resnet18", num_classes=3)
    assert offline == [("huggingface.co", 443)] and "huggingface.co did not answer" in info.note
    offline.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub's own switch is honoured too: no connection tried
    _, info = load_timm("resnet18", num_classes=3)
    assert info.is_standin and "HF_HUB_OFFLINE is set" in info.note and offline == []


def test_timm_cached_weights_load_without_network(tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    weights = timm.create_model("test_vit").state_dict()
    snapshot = tmp_path / "hf" / "models--timm--test_vit.r160_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(weights, snapshot / "model.safetensors")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    model, info = load_timm("test_vit.r160_in1k")
    assert info.is_pretrained and "from the local cache" in capsys.readouterr().out
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_timm_downloads_when_online_and_builds_random_init_when_asked(monkeypatch, capsys):
    import timm

    built = []
    create = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda name, **kw: built.append(kw) or create("test_vit", num_classes=2))
    monkeypatch.setattr(pretrained, "online", lambda **host: True)
    monkeypatch.delenv("VIT_OFFLINE")
    _, info = load_timm("vit_small_patch16_224")
    assert info.is_pretrained and built == [dict(pretrained=True)]  # timm's own download, nothing overridden
    printed = capsys.readouterr().out
    assert printed == "Weights: pretrained vit_small_patch16_224 (timm), downloaded from huggingface.co.\n"
    _, info = load_timm("vit_small_patch16_224", pretrained=False, num_classes=4)
    assert info.source == "random-init" and built[-1] == dict(pretrained=False, num_classes=4)


def test_open_clip_finds_its_hub_file_in_the_cache(tmp_path):
    import open_clip

    repo = tmp_path / "hf" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "snapshots" / ("2" * 40)).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("2" * 40)
    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    assert pretrained._open_clip_cached(cfg)[0] is None
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):  # the safetensors file wins
        (repo / "snapshots" / ("2" * 40) / name).write_bytes(b"")
        assert pretrained._open_clip_cached(cfg)[0] == str(repo / "snapshots" / ("2" * 40) / name)


def test_transformers_offline_stand_ins():
    model, info = load_transformers("facebook/dinov2-small")
    assert info.is_standin and type(model).__name__ == "Dinov2Model"
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).last_hidden_state.shape == (1, 1 + 16 * 16, 64)  # patch 14
    model, info = load_transformers("google/vit-base-patch16-224", cls="ViTForImageClassification", num_labels=3)
    assert (model.config.patch_size, model.config.image_size) == (16, 224)  # read from the id
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).logits.shape == (1, 3)
    with pytest.raises(WeightsUnavailable, match="no random-init stand-in"):
        load_transformers("microsoft/resnet-50")


def test_transformers_cached_model_loads_with_the_hub_offline(tmp_path, capsys):
    import huggingface_hub.constants
    from transformers import ViTConfig, ViTModel

    saved = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=32, patch_size=8))
    repo = tmp_path / "hub" / "models--course--tiny-vit"
    saved.save_pretrained(repo / "snapshots" / ("1" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    model, info = load_transformers("course/tiny-vit", cache_dir=str(tmp_path / "hub"))
    assert info.is_pretrained and "from the local cache" in capsys.readouterr().out
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.state_dict().items())
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # switched back after loading


def test_open_clip_offline_stand_in_keeps_the_interface():
    model, preprocess, tokenizer, info = load_open_clip("ViT-B-32", "laion2b_s34b_b79k")
    assert info.is_standin and info.library == "open_clip"
    tokens = tokenizer(["a drawing of a red circle", "a photo of a cat"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.int64
    with torch.no_grad():
        assert model.encode_image(torch.rand(2, 3, 224, 224)).shape == (2, 64)
        assert model.encode_text(tokens).shape == (2, 64)


def test_weights_at_full_scale_raise_with_the_fix(monkeypatch, capsys):
    full_scale(monkeypatch)
    for load, name in [(lambda: load_timm("vit_small_patch16_224"), "vit_small_patch16_224"),
                       (lambda: load_transformers("facebook/dinov2-small"), "facebook/dinov2-small"),
                       (lambda: load_open_clip("ViT-B-32", "openai"), "ViT-B-32 openai")]:
        with pytest.raises(WeightsUnavailable) as error:
            load()
        message = str(error.value)
        assert name in message and "HF_HUB_CACHE" in message and "require=False" in message
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(pretrained, "SCALE", Scale.SMOKE)
    with pytest.raises(WeightsUnavailable, match="require=True"):
        load_timm("vit_small_patch16_224", require=True)


# -- the modules and their documentation ----------------------------------------------------------------
def test_modules_import_no_model_library_up_front():
    for module in ("data.py", "pretrained.py"):
        tree = ast.parse((weeks.SOLUTION_PACKAGE / module).read_text())
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
        assert not top & {"timm", "transformers", "open_clip", "medmnist", "torchvision", "sklearn", "skimage"}, module


def test_data_readme_names_every_environment_variable():
    readme = (weeks.REPO / "data" / "README.md").read_text()
    code = "".join((weeks.SOLUTION_PACKAGE / m).read_text() for m in ("data.py", "pretrained.py", "scale.py"))
    for variable in {*re.findall(r"\bVIT_[A-Z_]+", code), "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TORCH_HOME"}:
        assert f"`{variable}`" in readme, f"data/README.md does not document {variable}"
