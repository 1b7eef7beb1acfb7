"""Known answers for the direction methods (SeFa, GANSpace, InterFaceGAN, Jacobian), on toy
generators whose directions are known by construction, and `steer walk --method ...` then
`steer render` on the bundled dcgan-shapes32."""
import json

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from steer.directions.ganspace import ganspace
from steer.directions.interfacegan import fit_boundary, interfacegan
from steer.directions.jacobian import jacobian
from steer.directions.sefa import sefa
from steer.generators.base import FirstLayer, Generator
from steer.walks import load
from tests.conftest import run_steer

D = 6  # latent size of the toys
STRENGTHS = torch.tensor([8.0, 5.0, 3.0, 2.0, 1.2, 0.6])  # well apart, strongest first


def orthogonal(n, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


def cosines(found, expected):
    """|cos| of each found row with the expected row of the same rank."""
    found = found / found.norm(dim=1, keepdim=True)
    return (found * expected[: len(found)]).sum(1).abs()


class LinearToy(Generator):
    """image = U diag(s) V' latent + b, as a 3 x 4 x 4 image; first_layer() is a map onto a
    4 x 4 x 4 grid with the same right-singular vectors V and rows of equal length (a
    Hadamard left factor), so SeFa's row normalisation leaves its answer unchanged.
    spaces z and w (w = L z with covariance L L' = Q diag(var) Q'), w the default."""

    family, name, resolution, latent_dim = "toy", "toy", 4, D

    def __init__(self, with_w=False):
        super().__init__()
        self.V = orthogonal(D, 1)  # columns: the directions, strongest first
        u = orthogonal(48, 2)[:, :D]
        self.register_buffer("B", u @ torch.diag(STRENGTHS) @ self.V.T)
        self.register_buffer("b", torch.randn(48, generator=torch.Generator().manual_seed(3)))
        grid_left = torch.from_numpy(hadamard(64)[:, :D]).float() / 8
        self.register_buffer("A", grid_left @ torch.diag(STRENGTHS) @ self.V.T)
        self.Q, self.variances = orthogonal(D, 4), torch.tensor([9.0, 4.0, 1.0, 0.3, 0.1, 0.05])
        self.register_buffer("L", self.Q @ torch.diag(self.variances.sqrt()))
        if with_w:
            self.spaces, self.default_space, self.w_dim, self.truncation_kind = ("z", "w"), "w", D, "psi"

    @property
    def device(self):  # a toy without parameters
        return torch.device("cpu")

    def to_space(self, z, classes, space=None, truncation=None):
        return z @ self.L.T if (space or self.default_space) == "w" else z

    def synthesize(self, latent, classes=None, space=None, truncation=None):
        return (latent @ self.B.T + self.b).reshape(-1, 3, 4, 4)

    def first_layer(self):
        return FirstLayer(self.A.reshape(4, 4, 4, D), torch.zeros(4, 4, 4), slice(0, D))

    def style_affines(self):  # three w+ rows, each reading w through a third of A's rows
        return [[self.A[:21]], [self.A[21:42]], [self.A[42:]]]


def test_sefa_recovers_the_first_layers_right_singular_vectors():
    G = LinearToy()
    found = sefa(G, components=4)
    cos = cosines(found.vectors, G.V.T)
    print("SeFa z cosines", cos.tolist(), "seconds", found.report["seconds"])
    assert cos.min() > 0.99
    # eigenvalues of A'A with unit rows: s^2 / sum(s^2) * rows, in order
    expected = STRENGTHS[:4] ** 2 / (STRENGTHS ** 2).sum() * 64
    assert np.allclose(found.values, expected, rtol=1e-4)


def test_sefa_in_w_stacks_the_style_affines():
    G = LinearToy(with_w=True)
    found = sefa(G, components=3)
    assert found.where.space == "w"
    cos = cosines(found.vectors, G.V.T)
    print("SeFa w cosines", cos.tolist())
    assert cos.min() > 0.99


@pytest.mark.parametrize("kind", ["global", "local"])
def test_jacobian_recovers_the_right_singular_vectors(kind):
    G = LinearToy()
    found = jacobian(G, components=3, kind=kind, samples=2, iterations=8, oversample=2, chunk=2)
    cos = cosines(found.vectors, G.V.T)
    print("Jacobian", kind, "cosines", cos.tolist(), "jvp", found.report["jvp"])
    assert cos.min() > 0.99
    assert np.allclose(found.values, (STRENGTHS[:3] ** 2).tolist(), rtol=1e-3)


def test_ganspace_in_w_recovers_a_known_covariance():
    G = LinearToy(with_w=True)
    found = ganspace(G, components=3, samples=4000, batch=500)
    cos = cosines(found.vectors, G.Q.T)
    print("GANSpace w cosines", cos.tolist(), "variances", found.values)
    assert cos.min() > 0.99
    assert np.allclose(found.values, G.variances[:3].tolist(), rtol=0.1)


def test_ganspace_in_z_regresses_image_components_back_to_the_latent():
    G = LinearToy()
    found = ganspace(G, components=3, samples=2000, batch=500, layer="image")
    cos = cosines(found.vectors, G.V.T)
    print("GANSpace z (image PCA) cosines", cos.tolist())
    assert cos.min() > 0.99


def test_svm_finds_a_linear_score_and_projects_out_a_condition(tmp_path):
    G = LinearToy()
    g = torch.Generator().manual_seed(5)
    a = torch.randn(D, generator=g)
    a /= a.norm()
    b = torch.randn(D, generator=g)
    b -= (b @ a) * a * 0.5  # correlated with a, not parallel
    b /= b.norm()
    # scores of seeds 0..1499 as a user's CSV: linear in each seed's z
    z = torch.cat([G.sample(1, seed=s)[0] for s in range(1500)])
    for name, vec in (("a", a), ("b", b)):
        (tmp_path / f"{name}.csv").write_text("seed,score\n" + "".join(f"{s},{float(v)}\n"
                                                                        for s, v in enumerate(z @ vec)))
    found = interfacegan(G, str(tmp_path / "a.csv"), share=0.2)
    n = found.vectors[0]
    acc = found.report["validation_accuracy"]
    print("SVM cosine", float(n @ a), "validation accuracy", acc)
    assert float(n @ a) > 0.99 and acc > 0.95
    conditioned = interfacegan(G, str(tmp_path / "a.csv"), share=0.2, conditions=[str(tmp_path / "b.csv")])
    m = conditioned.vectors[0]
    wanted = a - (a @ b) * b
    wanted /= wanted.norm()
    print("SVM conditioned: cos with b", float(m @ b), "with a minus b", float(m @ wanted))
    assert abs(float(m @ b)) < 0.05 and float(m @ wanted) > 0.98


def test_svm_boundary_of_a_noisy_linear_score():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3000, 10, generator=g)
    a = torch.randn(10, generator=g)
    a /= a.norm()
    normal, report = fit_boundary(x, x @ a + 0.1 * torch.randn(3000, generator=g), share=0.1)
    print("SVM noisy cosine", float(normal @ a), report["validation_accuracy"])
    assert float(normal @ a) > 0.98 and report["validation_accuracy"] > 0.95


# ---- the CLI on the bundled model, then render ----------------------------------------------

@pytest.mark.parametrize("method, extra", [
    ("sefa", ["--components", "3"]),
    ("pca", ["--components", "3", "--samples", "64"]),
    ("svm", ["--attribute", "area", "--samples", "80", "--share", "0.25", "--condition", "centre_x"]),
    ("jacobian", ["--components", "2", "--samples", "1", "--component", "1"]),
])
@pytest.mark.slow
def test_walk_method_then_render(tmp_path, method, extra):
    out = tmp_path / method
    result = run_steer("walk", "--method", method, "--model", "dcgan-shapes32", "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    walk, meta = load(out / "walk.safetensors")
    assert meta["method"] == method and meta["source"]["name"] == "dcgan-shapes32"
    assert meta["direction"]["settings"] and meta["walk"] == "linear"
    assert walk.directions.abs().sum() > 0
    record = json.loads((out / "directions.json").read_text())
    components = sorted((out / "components").glob("*.safetensors"))
    assert len(components) == len(record["values"])
    assert (out / "strip.png").stat().st_size > 0 and (out / "components.png").stat().st_size > 0
    if method == "svm":
        assert 0 <= record["report"]["validation_accuracy"] <= 1
        assert record["report"]["conditions"][0]["attribute"] == "centre_x"
    rendered = run_steer("render", "--walk", str(out / "walk.safetensors"), "--alphas=-2,0,2", "--seeds", "0,1",
                         "--out", str(tmp_path / "render"))
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "render" / "strip.png").stat().st_size > 0


def test_walk_method_mistakes_are_one_line():
    from tests.conftest import assert_user_error
    assert_user_error(run_steer("walk", "--method", "svm", "--model", "dcgan-shapes32"), "--attribute")
    assert_user_error(run_steer("walk", "--method", "sefa", "--model", "dcgan-shapes32", "--components", "999"),
                      "--components")


@pytest.mark.parametrize("how", ["forward-mode", "double-backward", "finite-difference"])
def test_each_jvp_route_gives_jtj(how):
    """The fallbacks (for ops without a forward rule, e.g. DSS-GAN's CPU scan) agree with J'J."""
    from steer.directions.common import direction_space
    from steer.directions.jacobian import gram_product, image_map
    G = LinearToy()
    f = image_map(G, torch.randn(1, D), None, direction_space(G))
    v = torch.randn(D, 3)
    state = {"jvp": how}
    got = gram_product(f, D, v, chunk=2, state=state)
    assert state["jvp"] == how
    assert torch.allclose(got, G.B.T @ G.B @ v, rtol=1e-3, atol=1e-3)
