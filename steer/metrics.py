"""Offline measures of generator quality and diversity (no downloads): the Frechet distance
between real and generated images in the features of a network we have weights for; NDB and
JSD over k-means bins (Richardson & Weiss, as MSGAN reports them); k-NN precision/recall
(Kynkaanniemi et al.) and density/coverage (Naeem et al.); and how often a classifier
recognises the class a conditional generator was asked for. Inputs are arrays or tensors
(n, ...), flattened per sample: pixels or features alike."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def frechet_distance(features_a, features_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (n, d)."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # ReLU features leave some dimensions constant, so singular covariances are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # nearly singular product: nudge both covariances, as the FID reference code does
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def _flat(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    return x.reshape(len(x), -1).double()


def ndb_jsd(real, fake, bins: int = 50, level: float = 0.05, seed: int = 0) -> dict:
    """Bin the real samples by k-means (k = bins), put each generated sample in its nearest
    bin, and compare the two histograms: NDB counts the bins whose proportions differ by a
    two-proportion z-test at `level` (two-sided), JSD is the Jensen-Shannon divergence
    between the histograms (natural log, so at most ln 2)."""
    from scipy.stats import norm
    from sklearn.cluster import KMeans

    real, fake = _flat(real).numpy(), _flat(fake).numpy()
    kmeans = KMeans(n_clusters=bins, n_init=3, random_state=seed).fit(real)
    counts_real = np.bincount(kmeans.labels_, minlength=bins).astype(np.float64)
    counts_fake = np.bincount(kmeans.predict(fake), minlength=bins).astype(np.float64)
    n_real, n_fake = counts_real.sum(), counts_fake.sum()
    p_real, p_fake = counts_real / n_real, counts_fake / n_fake
    pooled = (counts_real + counts_fake) / (n_real + n_fake)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_real + 1 / n_fake))
    z = np.divide(p_real - p_fake, se, out=np.zeros(bins), where=se > 0)
    different = np.abs(z) > norm.ppf(1 - level / 2)
    middle = (p_real + p_fake) / 2

    def kl(p, q):
        keep = p > 0
        return float((p[keep] * np.log(p[keep] / q[keep])).sum())

    return {"ndb": int(different.sum()), "ndb_fraction": float(different.mean()), "bins": bins,
            "level": level, "jsd": 0.5 * kl(p_real, middle) + 0.5 * kl(p_fake, middle)}


def _kth_neighbour_radii(x, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    radii = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the row itself (0)
    return torch.cat(radii)


def _ball_counts(points, centres, radii, chunk: int = 1024) -> torch.Tensor:
    """For each point, how many balls (centre, radius) contain it."""
    counts = []
    for i in range(0, len(points), chunk):
        counts.append((torch.cdist(points[i:i + chunk], centres) <= radii.unsqueeze(0)).sum(1))
    return torch.cat(counts)


def precision_recall_density_coverage(real, fake, k: int = 3) -> dict:
    """k-NN manifold measures. Precision: share of generated samples inside the real
    manifold (the union of balls reaching each real sample's k-th neighbour); recall: share
    of real samples inside the generated manifold; density: mean count of real balls holding
    a generated sample, over k; coverage: share of real balls holding a generated sample."""
    real, fake = _flat(real), _flat(fake)
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    fake_in_real = _ball_counts(fake, real, real_radii)
    real_in_fake = _ball_counts(real, fake, fake_radii)
    nearest_fake = torch.cat([torch.cdist(real[i:i + 1024], fake).min(1).values for i in range(0, len(real), 1024)])
    return {"precision": float((fake_in_real > 0).double().mean()),
            "recall": float((real_in_fake > 0).double().mean()),
            "density": float(fake_in_real.double().mean() / k),
            "coverage": float((nearest_fake <= real_radii).double().mean()), "k": k}


@torch.no_grad()
def lpips_diversity(images, classes=None, pairs: int = 1000, seed: int = 0, distance=None) -> dict:
    """Mean LPIPS between random pairs of different samples that share a class (all samples
    form one class when `classes` is None), as MSGAN and SDM report diversity. `distance`:
    a MaskedLPIPS; by default the pretrained AlexNet LPIPS when its weights are in torch's
    cache, else the pixel-space mean squared distance, and the result says which."""
    from .losses import MaskedLPIPS, lpips_backbone_path

    images = torch.as_tensor(images).float()
    classes = torch.zeros(len(images), dtype=torch.long) if classes is None else torch.as_tensor(classes)
    name = "lpips-alex" if distance is not None else None
    if distance is None and lpips_backbone_path("alex").is_file():
        distance, name = MaskedLPIPS("alex"), "lpips-alex"
    if distance is None:
        name = "pixel mean squared distance (LPIPS weights absent)"
    gen = torch.Generator().manual_seed(seed)
    groups = [torch.nonzero(classes == c).flatten() for c in classes.unique()]
    groups = [g for g in groups if len(g) > 1]
    if not groups:
        raise ValueError("lpips_diversity needs at least two samples of one class")
    values = []
    for _ in range(pairs):
        group = groups[int(torch.randint(len(groups), (1,), generator=gen))]
        i, j = group[torch.randperm(len(group), generator=gen)[:2]]
        a, b = images[i:i + 1], images[j:j + 1]
        values.append(float(distance(a, b)) if distance is not None else float((a - b).square().mean()))
    return {"diversity": float(np.mean(values)), "distance": name, "pairs": pairs}


@torch.no_grad()
def batched(fn, images, batch: int = 256):
    return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def shapes_generator_quality(generator, classifier, n: int = 5000, seed: int = 0) -> dict:
    """Frechet distance (shapes-classifier features) to real shapes, the same distance
    between two independent real sets as its floor, and class recognition rates."""
    from .data.shapes import sample_shapes

    device = generator.device
    classifier = classifier.to(device)
    real, attrs = sample_shapes(n, seed=seed + 1, resolution=generator.resolution)
    real_b, _ = sample_shapes(n, seed=seed + 2, resolution=generator.resolution)
    classes = torch.arange(n) % generator.num_classes
    fakes = []
    for i in range(0, n, 256):
        z, c = generator.sample(min(256, n - i), seed=seed + 1000 + i, classes=classes[i:i + 256])
        fakes.append(generator(z, c).cpu())
    fake = torch.cat(fakes)
    feats = {k: batched(classifier.features, v.to(device)).cpu().numpy()
             for k, v in (("real", real), ("real_b", real_b), ("fake", fake))}
    predicted_fake = batched(classifier, fake.to(device)).argmax(1).cpu()
    predicted_real = batched(classifier, real.to(device)).argmax(1).cpu()
    return {
        "samples": n,
        "feature_network": "steer shapes-classifier32 (penultimate layer, 128-d)",
        "frechet_distance": frechet_distance(feats["real"], feats["fake"]),
        "frechet_distance_real_vs_real": frechet_distance(feats["real"], feats["real_b"]),
        "class_recognised_generated": float((predicted_fake == classes).float().mean()),
        "class_recognised_real": float((predicted_real == attrs["class"]).float().mean()),
    }


def quality_data(generator) -> str:
    """"mnist" or "shapes": the real data a generator's quality is measured against. Its
    model folder's record (steer.data.training_data) decides; without one, class names
    "0".."9" mean MNIST, and anything else is measured as shapes, as before."""
    from .data import training_data
    from .data.mnist import DIGIT_CLASSES

    recorded = training_data(generator)
    if recorded is not None:
        return recorded
    return "mnist" if list(generator.class_names or []) == list(DIGIT_CLASSES) else "shapes"


@torch.no_grad()
def mnist_generator_quality(generator, classifier, n: int = 5000, seed: int = 0) -> dict:
    """The shapes measures for a generator trained on MNIST, with the digit classifier: the
    Frechet distance of n samples (classes cycling 0..9) to the 1,000 held-out real digits in
    its 128-d features; as the floor, the same distance from min(n, 4000) training digits to
    the held-out ones (real vs real: what a generator that drew fresh real digits would get);
    recognition of the asked-for class, overall and per class; and the classifier's accuracy
    on the held-out digits, the ceiling of recognition."""
    from .data.mnist import load_mnist

    device = generator.device
    classifier = classifier.to(device)
    test, test_classes, names = load_mnist("test", generator.resolution)
    train, _, _ = load_mnist("train", generator.resolution)
    # the Frechet distance grows as the sets shrink: the floor uses as many training digits
    # as there are samples (up to all 4,000), so the two distances are comparable
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    fake, classes = generate(generator, n, seed=seed, batch=256)
    feats = {k: batched(classifier.features, v.to(device)).cpu().numpy()
             for k, v in (("test", test), ("train", train), ("fake", fake))}
    right_fake = batched(classifier, fake.to(device)).argmax(1).cpu() == classes
    right_real = batched(classifier, test.to(device)).argmax(1).cpu() == test_classes

    def per_class(right, labels):
        return {names[c]: float(right[labels == c].float().mean()) for c in range(len(names)) if (labels == c).any()}

    result = {
        "samples": n,
        "training_data": "mnist",
        "real_digits": f"{len(test)} held-out MNIST test digits (train-vs-test floor: {len(train)} training digits)",
        "feature_network": "steer mnist-classifier32 (penultimate layer, 128-d)",
        "frechet_distance": frechet_distance(feats["test"], feats["fake"]),
        "frechet_distance_real_vs_real": frechet_distance(feats["test"], feats["train"]),
    }
    if generator.num_classes:  # an unconditional generator is asked for no class
        result["class_recognised_generated"] = float(right_fake.float().mean())
        result["class_recognised_generated_per_class"] = per_class(right_fake, classes)
    result["class_recognised_real"] = float(right_real.float().mean())
    result["class_recognised_real_per_class"] = per_class(right_real, test_classes)
    return result


def generator_quality(generator, n: int = 5000, seed: int = 0, classifier=None) -> dict:
    """shapes_generator_quality or mnist_generator_quality, whichever the generator's training
    data calls for, with the matching bundled classifier unless one is given."""
    from .classifier import BUNDLED_CLASSIFIER, MNIST_CLASSIFIER, load_classifier

    if quality_data(generator) == "mnist":
        return mnist_generator_quality(generator, classifier or load_classifier(MNIST_CLASSIFIER, generator.device),
                                       n=n, seed=seed)
    return shapes_generator_quality(generator, classifier or load_classifier(BUNDLED_CLASSIFIER, generator.device),
                                    n=n, seed=seed)


# ---- feature networks ------------------------------------------------------------------

# torchvision's ImageNet weights, found in torch's cache (never downloaded)
BACKBONE_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth",
                  "inception": "inception_v3_google-0cc3c7bd.pth"}
# pytorch-fid's port of the TF Inception behind standard FID (its own cache name)
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_NETWORKS = ("shapes", "mnist", "pixels", "fid", *BACKBONE_FILES)


def _fid_inception(path):
    """pytorch-fid's FID Inception, its weights read from `path` with torch.load(weights_only=True):
    the library's own loader would unpickle the file in full."""
    from unittest import mock

    from pytorch_fid import inception

    def read(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)

    with mock.patch.object(inception, "load_state_dict_from_url", read):
        return inception.InceptionV3([3], resize_input=True, normalize_input=True).eval()


def feature_network(name: str):
    """(fn: images in [-1, 1] -> (n, d) features, description). 'shapes', 'mnist': steer's
    shapes or digit classifier (penultimate layer); 'pixels': the images themselves; resnet18, resnet50,
    inception: torchvision's ImageNet backbones (pooled features) when their weights are in
    torch's cache. torchvision's Inception-v3 is not the TF network behind standard FID, so
    its figures are called Frechet distances in that network, never FID. 'fid': pytorch-fid's
    Inception with its TF weights from torch's cache: the Frechet distance is then standard FID."""
    from pathlib import Path

    from .errors import SteerError

    if name == "pixels":
        return (lambda images: images.reshape(len(images), -1)), "pixels (no feature network)"
    if name == "shapes":
        from .classifier import load_classifier
        classifier = load_classifier().eval()
        return classifier.features, "steer shapes-classifier32 (penultimate layer, 128-d)"
    if name == "mnist":
        from .classifier import MNIST_CLASSIFIER, load_classifier
        classifier = load_classifier(MNIST_CLASSIFIER).eval()
        return classifier.features, "steer mnist-classifier32 (penultimate layer, 128-d)"
    if name == "fid":
        try:
            import pytorch_fid  # noqa: F401
        except ImportError:
            raise SteerError("--features fid needs the pytorch-fid package: pip install -e \".[fid]\"") from None
        path = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE
        if not path.is_file():
            raise SteerError(f"standard FID needs pytorch-fid's Inception weights {path.name} in {path.parent}/ "
                             "(steer downloads nothing unasked: run steer fetch fid-inception); or choose "
                             "--features shapes, pixels or a backbone")
        try:
            net = _fid_inception(path)
        except Exception as e:
            raise SteerError(f"cannot read {path}: {str(e).splitlines()[0]}") from None

        def fid_features(images):  # pytorch-fid takes [0, 1] and resizes to 299 itself
            return net((images + 1) / 2)[0].flatten(1)

        return fid_features, "standard FID: pytorch-fid Inception (TF 2015-12-05 weights, 2048-d pool)"
    if name not in BACKBONE_FILES:
        raise SteerError(f"unknown feature network '{name}': choose one of {', '.join(FEATURE_NETWORKS)}")
    path = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[name]
    if not path.is_file():
        raise SteerError(f"feature network {name} needs torchvision's weights {path.name} in {path.parent}/ "
                         "(steer never downloads); or choose --features pixels or shapes")
    import torchvision
    net = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50,
           "inception": lambda: torchvision.models.inception_v3(aux_logits=True, init_weights=False)}[name]()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:
        raise SteerError(f"cannot read {path}: {e}") from None
    net.fc = torch.nn.Identity()
    net.eval()
    size = 299 if name == "inception" else 224
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)

    def features(images):
        x = torch.nn.functional.interpolate((images + 1) / 2, size=(size, size), mode="bilinear",
                                            align_corners=False)
        return net((x - mean.to(x)) / std.to(x))

    return features, f"torchvision {name} ImageNet weights (pooled features)"


@torch.no_grad()
def generate(generator, n: int, classes=None, seed: int = 0, batch: int = 64):
    """n samples (cpu) and their classes; classes cycle through all of them unless given."""
    if generator.num_classes:
        classes = torch.arange(n) % generator.num_classes if classes is None else torch.as_tensor(classes).expand(n)
    images, out_classes = [], []
    for i in range(0, n, batch):
        c = None if classes is None else classes[i:i + batch]
        z, c = generator.sample(min(batch, n - i), seed=seed + 1000 + i, classes=c)
        images.append(generator(z, c).float().cpu().clamp(-1, 1))
        out_classes.append(c.cpu() if c is not None else torch.zeros(len(z), dtype=torch.long))
    return torch.cat(images), torch.cat(out_classes)


def compare_sets(real, real_feats, fake, fake_feats, fake_classes, bins: int, seed: int = 0) -> dict:
    """Every measure of one generated set against one real set."""
    n = min(len(real_feats), len(fake_feats))
    bins = max(2, min(bins, n // 20))
    return {"samples_real": len(real_feats), "samples_generated": len(fake_feats),
            "frechet_distance": frechet_distance(real_feats, fake_feats),
            **{k: v for k, v in ndb_jsd(real_feats, fake_feats, bins=bins, seed=seed).items()},
            **precision_recall_density_coverage(real_feats, fake_feats),
            "lpips_diversity": lpips_diversity(fake, fake_classes, pairs=min(500, 4 * len(fake)), seed=seed)}


def evaluate_generator(generator, real, real_classes, n: int, features: str = "shapes", only_class=None,
                       bins: int = 50, seed: int = 0, progress=None) -> dict:
    """All measures, overall and per class, of n generated samples against the real set.
    `features`: a feature network name or what feature_network() returned. `progress(label)`
    is called before each stage."""
    step = progress or (lambda label: None)
    step("generating")
    fake, fake_classes = generate(generator, n, classes=only_class, seed=seed)
    if only_class is not None:
        keep = real_classes == only_class
        real, real_classes = real[keep], real_classes[keep]
    step("features")
    fn, description = feature_network(features) if isinstance(features, str) else features
    features = features if isinstance(features, str) else description
    with torch.no_grad():
        real_feats = batched(fn, real.to(generator.device), 64).cpu().double().numpy()
        fake_feats = batched(fn, fake.to(generator.device), 64).cpu().double().numpy()
    step("overall")
    result = {"model": generator.name, "feature_network": description, "features": features,
              "overall": compare_sets(real, real_feats, fake, fake_feats, fake_classes, bins, seed)}
    recognised = None
    from .data import training_data
    data = training_data(generator) or quality_data(generator)
    # recognition needs a classifier of the model's own classes: steer has one for shapes and one for digits
    classifier_name = {"shapes": "shapes-classifier32", "mnist": "mnist-classifier32"}.get(data)
    if classifier_name and generator.num_classes and generator.resolution == 32:
        from .classifier import load_classifier
        classifier = load_classifier(classifier_name, generator.device).eval()
        result["overall"]["classifier"] = classifier_name
        with torch.no_grad():
            predicted = batched(classifier, fake.to(generator.device), 64).argmax(1).cpu()
        recognised = predicted == fake_classes
        result["overall"]["class_recognised"] = float(recognised.float().mean())
    if generator.num_classes:
        result["per_class"] = {}
        for c in fake_classes.unique().tolist():
            step(f"class {c}")
            r, f = (real_classes == c).numpy(), (fake_classes == c).numpy()
            if r.sum() < 10 or f.sum() < 10:
                continue
            result["per_class"][str(c)] = compare_sets(real[r], real_feats[r], fake[f], fake_feats[f],
                                                       fake_classes[f], bins, seed)
            names = generator.class_names or []
            result["per_class"][str(c)]["name"] = names[c] if c < len(names) else str(c)
            if recognised is not None:
                result["per_class"][str(c)]["class_recognised"] = float(recognised[f].float().mean())
    return result
