"""BigGAN-deep (Brock, Donahue & Simonyan, ICLR 2019) in the 128, 256 and 512 configurations,
as released for the `pytorch-pretrained-biggan` package: a folder holding `pytorch_model.bin`
(a plain torch.save'd state dict) and `config.json`.

steer builds the network with its own code under the same state_dict keys and reads the
weights with `torch.load(weights_only=True)` and `strict=True`, so a file that asks to run
code is refused and a missing or extra tensor is named, never silently skipped.

The network: z (z_dim) and a class embedding (a bias-free linear map of the one-hot class,
z_dim wide) are concatenated into one condition vector. A spectrally normalised linear map
of it gives a 4x4 grid (stored height, width, channels, as TensorFlow laid it out); then a
stack of bottleneck residual blocks (1x1, 3x3, 3x3, 1x1 convs, each after a conditional batch
norm whose gain and offset are linear in the condition vector), upsampling every other block,
one self-attention block, a final plain batch norm, a 3x3 conv and tanh on its first three
channels. The batch norms hold no batch statistics: the release stores their means and
variances measured at n_stats truncation values evenly spaced in [0, 1], and synthesis
interpolates them at the truncation asked for.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SteerError
from . import schema as S
from .base import Family, FirstLayer, Generator, run_layer
from .loading import read_config

WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"

# (upsample, in channels, out channels) per block, in units of channel_width; the 128 px
# layout. The 256 and 512 releases insert two and four more blocks (see `release_config`).
_LAYERS_128 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
               (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]
_LAYERS_256 = _LAYERS_128[:5] + [(True, 8, 8), (False, 8, 8), (True, 8, 4)] + _LAYERS_128[6:]
_LAYERS_512 = _LAYERS_256 + [(False, 1, 1), (True, 1, 1)]


def release_config(resolution: int, channel_width: int = 128) -> dict:
    """The config.json of the released BigGAN-deep at `resolution` (128, 256 or 512).
    A smaller channel_width gives the same layout with thinner layers (for tests)."""
    layers = {128: _LAYERS_128, 256: _LAYERS_256, 512: _LAYERS_512}.get(resolution)
    if layers is None:
        raise SteerError(f"BigGAN-deep was released at 128, 256 and 512 px, not {resolution}")
    return {"output_dim": resolution, "z_dim": 128, "class_embed_dim": 128, "channel_width": channel_width,
            "num_classes": 1000, "layers": [list(layer) for layer in layers],
            "attention_layer_position": 8, "eps": 1e-4, "n_stats": 51}


# -- spectrally normalised layers ------------------------------------------------------------

class _SpectralNorm(nn.Module):
    """A layer whose weight is weight_orig divided by its largest singular value, estimated
    as u . (W v) from the stored singular vectors. The release was saved after its power
    iteration, so at inference the stored u and v are used as they are."""

    def _init_spectral(self, shape):
        self.weight_orig = nn.Parameter(torch.empty(shape))
        rows, cols = shape[0], math.prod(shape[1:])
        self.register_buffer("weight_u", F.normalize(torch.randn(rows), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(cols), dim=0))

    def weight(self) -> torch.Tensor:
        matrix = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        sigma = torch.dot(self.weight_u, matrix @ self.weight_v)
        return self.weight_orig / sigma


class SNLinear(_SpectralNorm):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self._init_spectral((out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))

    def forward(self, x):
        return F.linear(x, self.weight(), self.bias)


class SNConv2d(_SpectralNorm):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self._init_spectral((out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.padding = kernel_size // 2
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))

    def forward(self, x):
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


# -- batch norm with statistics per truncation -----------------------------------------------

class TruncationBatchNorm(nn.Module):
    """Normalises with the mean and variance stored for the truncation in use (linear
    interpolation between the two nearest stored values). Conditional: gain 1 + scale(c) and
    offset(c) from the condition vector c; otherwise a learned per-channel weight and bias."""

    def __init__(self, num_features: int, condition_dim: int | None, n_stats: int, eps: float):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.conditional = condition_dim is not None
        if self.conditional:
            self.scale = SNLinear(condition_dim, num_features, bias=False)
            self.offset = SNLinear(condition_dim, num_features, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def statistics(self, truncation: float):
        """(mean, var) at `truncation` in (0, 1]."""
        n = self.running_means.shape[0]
        # the same arithmetic as the release's index (truncation / step), so grid values
        # such as 0.4 land exactly on their stored row
        frac, low = math.modf(truncation / (1.0 / (n - 1)))
        low = int(low)
        if frac == 0.0:
            return self.running_means[low], self.running_vars[low]
        high = min(low + 1, n - 1)
        mean = (1 - frac) * self.running_means[low] + frac * self.running_means[high]
        var = (1 - frac) * self.running_vars[low] + frac * self.running_vars[high]
        return mean, var

    def forward(self, x, truncation: float, condition=None):
        mean, var = self.statistics(truncation)
        x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        if self.conditional:
            gain = 1 + self.scale(condition)
            return x * gain[:, :, None, None] + self.offset(condition)[:, :, None, None]
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class GenBlock(nn.Module):
    """Bottleneck residual block: four (batch norm, ReLU, conv) steps, channels in -> in/4 ->
    in/4 -> out; the skip path keeps the first `out` channels. Both paths upsample (nearest)
    when the block upsamples, the main path before its first 3x3 conv."""

    def __init__(self, in_size: int, out_size: int, condition_dim: int, upsample: bool, n_stats: int,
                 eps: float):
        super().__init__()
        if out_size > in_size:
            raise SteerError(f"BigGAN-deep block {in_size} -> {out_size} channels: blocks never widen")
        middle = in_size // 4
        self.upsample, self.out_size = upsample, out_size
        self.bn_0 = TruncationBatchNorm(in_size, condition_dim, n_stats, eps)
        self.conv_0 = SNConv2d(in_size, middle, 1)
        self.bn_1 = TruncationBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_1 = SNConv2d(middle, middle, 3)
        self.bn_2 = TruncationBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_2 = SNConv2d(middle, middle, 3)
        self.bn_3 = TruncationBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_3 = SNConv2d(middle, out_size, 1)

    def forward(self, x, condition, truncation: float):
        skip = x[:, : self.out_size]
        h = self.conv_0(F.relu(self.bn_0(x, truncation, condition)))
        h = F.relu(self.bn_1(h, truncation, condition))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        h = self.conv_1(h)
        h = self.conv_2(F.relu(self.bn_2(h, truncation, condition)))
        h = self.conv_3(F.relu(self.bn_3(h, truncation, condition)))
        return h + skip


class SelfAttention(nn.Module):
    """SAGAN self-attention: queries at every position, keys and values max-pooled 2x2,
    the result added back scaled by a learned gamma."""

    def __init__(self, channels: int):
        super().__init__()
        self.snconv1x1_theta = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_g = SNConv2d(channels, channels // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        query = self.snconv1x1_theta(x).flatten(2)                       # (n, c/8, hw)
        key = F.max_pool2d(self.snconv1x1_phi(x), 2).flatten(2)          # (n, c/8, hw/4)
        value = F.max_pool2d(self.snconv1x1_g(x), 2).flatten(2)          # (n, c/2, hw/4)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)   # (n, hw, hw/4)
        out = (value @ attention.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class _Synthesis(nn.Module):
    """The release's `generator` sub-module: condition vector -> image."""

    def __init__(self, cfg: dict):
        super().__init__()
        ch, condition_dim = cfg["channel_width"], 2 * cfg["z_dim"]
        n_stats, eps = cfg["n_stats"], cfg["eps"]
        self.grid_channels = 16 * ch
        self.gen_z = SNLinear(condition_dim, 4 * 4 * self.grid_channels)
        layers = []
        for i, (upsample, c_in, c_out) in enumerate(cfg["layers"]):
            if i == cfg["attention_layer_position"]:
                layers.append(SelfAttention(ch * c_in))
            layers.append(GenBlock(ch * c_in, ch * c_out, condition_dim, bool(upsample), n_stats, eps))
        self.layers = nn.ModuleList(layers)
        self.bn = TruncationBatchNorm(ch, None, n_stats, eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3)
        self.checkpoint_layers = False  # Generator.set_gradient_checkpointing

    def forward(self, condition, truncation: float):
        # the 4x4 grid is stored height-major, channels last; contiguous so that the
        # convolutions see the usual memory layout (a permuted one picks other kernels and
        # rounds differently)
        h = self.gen_z(condition).view(-1, 4, 4, self.grid_channels).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            args = (h, condition, truncation) if isinstance(layer, GenBlock) else (h,)
            h = run_layer(layer, *args, checkpointed=self.checkpoint_layers)
        h = self.conv_to_rgb(F.relu(self.bn(h, truncation)))
        return torch.tanh(h[:, :3])


CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("biggan-deep",)),
    "output_dim": S.Int(8, S.MAX_RESOLUTION, power_of_two=True),
    "z_dim": S.Int(1, S.MAX_LATENT_DIM), "class_embed_dim": S.Int(1, S.MAX_LATENT_DIM),
    "channel_width": S.Int(1, S.MAX_CHANNELS // 16),
    "num_classes": S.Int(1, S.MAX_CLASSES),
    # (upsample, in, out) in units of channel_width
    "layers": S.Items(S.Fixed(S.Bool(), S.Int(1, 16), S.Int(1, 16)), 1, 64),
    "attention_layer_position": S.Int(0, 64), "eps": S.Num(1e-12, 1.0), "n_stats": S.Int(2, 1000),
}, required=("output_dim", "layers"))


def check_biggan_config(cfg: dict, where: str) -> dict:
    """The release's config.json checked against CONFIG_SCHEMA, absent optional keys given
    the release's values, then the sizes that must fit together: the blocks chain from the
    16-unit 4x4 grid down to 1 unit and upsample 4 px to output_dim."""
    cfg = S.check(CONFIG_SCHEMA, _fill_defaults(cfg) if isinstance(cfg, dict) else cfg, where)
    layers = cfg["layers"]
    reached = 4 * 2 ** sum(u for u, _, _ in layers)
    S.rule(reached == cfg["output_dim"], where, f"the layers upsample 4 px to {reached}, not output_dim "
           f"{cfg['output_dim']}")
    units = 16
    for i, (_, c_in, c_out) in enumerate(layers):
        S.rule(c_in == units, where, f"layer {i} reads {c_in} channel units but the one before writes {units}")
        S.rule(c_out <= c_in, where, f"layer {i}: blocks never widen ({c_in} -> {c_out})")
        units = c_out
    S.rule(units == 1, where, f"the last layer writes {units} channel units, the output batch norm reads 1")
    position, ch = cfg["attention_layer_position"], cfg["channel_width"]
    S.rule(position <= len(layers), where, f"attention_layer_position {position} is past the {len(layers)} layers")
    S.rule(min(ch * c_in for _, c_in, _ in layers) >= 4, where, "channel_width is too thin: a block's "
           "bottleneck (a quarter of its width) would have no channels")
    S.rule(position == len(layers) or ch * layers[position][1] >= 8, where,
           "channel_width is too thin: self-attention uses an eighth of its layer's width")
    # class_embed_dim is written by the release but unused: the embedding is z_dim wide
    return cfg


def _fill_defaults(cfg: dict) -> dict:
    """A config with the release's values for absent optional keys."""
    defaults = release_config(128)
    cfg = dict(cfg)
    for key in ("attention_layer_position", "eps", "n_stats", "num_classes", "z_dim", "channel_width"):
        cfg.setdefault(key, defaults[key])
    return cfg


class BigGANDeep(Generator):
    """BigGAN-deep behind the generator interface: latent z (truncated normal), classes
    0..999, truncation in (0, 1] shared by the z sampling and the batch-norm statistics."""

    family = "biggan-deep"
    spaces = ("z",)
    default_space = "z"
    truncation_kind = "biggan"

    def __init__(self, config: dict, name: str = "biggan-deep"):
        super().__init__()
        # configs from files were checked by the registry (check_biggan_config); steer's own
        # callers pass release_config
        self.cfg = _fill_defaults(config)
        self.cfg["layers"] = [list(layer) for layer in self.cfg["layers"]]
        self.name = name
        self.resolution = self.cfg["output_dim"]
        self.num_classes = self.cfg["num_classes"]
        self.latent_dim = self.cfg["z_dim"]
        self.class_names = None
        if self.num_classes == 1000:
            from ..data import imagenet_class_names
            self.class_names = imagenet_class_names()
        self.embeddings = nn.Linear(self.num_classes, self.latent_dim, bias=False)
        self.generator = _Synthesis(self.cfg)

    def check_truncation(self, truncation) -> float:
        """None means 1 (no truncation); anything else must lie in (0, 1]."""
        t = 1.0 if truncation is None else float(truncation)
        if not 0 < t <= 1:  # also refuses NaN
            raise SteerError(f"BigGAN truncation must be in (0, 1], got {t:g}")
        return t

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, classes=None):
        """z from a normal truncated to [-2, 2] and scaled by the truncation (as BigGAN's
        authors sample it), drawn on the CPU from `seed`."""
        t = self.check_truncation(truncation)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.latent_dim, generator=gen)
        bad = z.abs() > 2
        for _ in range(200):  # a draw lands inside with probability 0.95: 200 rounds leave nothing out
            if not bad.any():
                break
            z[bad] = torch.randn(int(bad.sum()), generator=gen)
            bad = z.abs() > 2
        z = z.clamp(-2, 2)  # the bound holds even so
        if classes is None:
            classes = torch.randint(self.num_classes, (n,), generator=gen)
        else:
            classes = torch.as_tensor(classes, dtype=torch.int64).reshape(-1).expand(n).clone()
        return (z * t).to(self.device), classes.to(self.device)

    def synthesize(self, latent, classes, space=None, truncation: float | None = None):
        self.check_space(space or "z")
        if classes is None:
            raise SteerError("BigGAN-deep is class-conditional: pass classes")
        t = self.check_truncation(truncation)
        classes = torch.as_tensor(classes, dtype=torch.int64, device=latent.device).reshape(-1)
        if classes.numel() == 1:
            classes = classes.expand(latent.shape[0])
        if classes.min() < 0 or classes.max() >= self.num_classes:
            raise SteerError(f"class indices must be in 0..{self.num_classes - 1}")
        one_hot = F.one_hot(classes, self.num_classes).to(latent.dtype)
        condition = torch.cat([latent, self.embeddings(one_hot)], dim=1)
        return self.generator(condition, t)

    def first_layer(self) -> FirstLayer:
        """The part of gen_z fed by z: z -> 4x4 grid of 16*channel_width channels. In
        BigGAN-deep z also reaches every conditional batch norm; closed-form directions
        account for the first layer only."""
        layer = self.generator.gen_z
        c, d = self.generator.grid_channels, self.latent_dim
        full = layer.weight()
        weight = full[:, :d].reshape(4, 4, c, d).permute(2, 0, 1, 3)
        # the class embedding's part is constant per class: averaged over classes, it is bias
        bias = layer.bias + full[:, d:] @ self.embeddings.weight.mean(1)
        bias = bias.reshape(4, 4, c).permute(2, 0, 1)
        return FirstLayer(weight, bias, slice(0, self.latent_dim))

    def config(self) -> dict:
        """The release's config.json keys, plus the family for steer's own folders."""
        return dict(self.cfg, family=self.family)


@torch.no_grad()
def random_biggan(resolution: int = 128, channel_width: int = 128, seed: int = 0, batch: int = 4) -> BigGANDeep:
    """A BigGAN-deep with random weights that still makes images in a sane range, for tests
    and experiments without the release: spectral-norm vectors converged by power iteration
    (random ones make sigma tiny and the activations overflow), batch-norm statistics measured
    on the network's own activations at truncation 1, then jittered per stored truncation so
    that the truncation matters."""
    torch.manual_seed(seed)
    model = BigGANDeep(release_config(resolution, channel_width), name=f"biggan-deep-{resolution}-random")
    gen = torch.Generator().manual_seed(seed)
    model.embeddings.weight.normal_(0, 1, generator=gen)
    for module in model.modules():
        if isinstance(module, _SpectralNorm):
            matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
            u, v = module.weight_u, module.weight_v
            for _ in range(30):
                v.copy_(F.normalize(matrix.t() @ u, dim=0))
                u.copy_(F.normalize(matrix @ v, dim=0))
        elif isinstance(module, SelfAttention):
            module.gamma.fill_(0.5)

    def measure(module, args):
        x = args[0]
        module.running_means.copy_(x.mean((0, 2, 3)).expand_as(module.running_means))
        module.running_vars.copy_(x.var((0, 2, 3)).expand_as(module.running_vars))

    norms = [m for m in model.modules() if isinstance(m, TruncationBatchNorm)]
    hooks = [m.register_forward_pre_hook(measure) for m in norms]
    z, classes = model.sample(batch, seed=seed)
    model.synthesize(z, classes, truncation=1.0)
    for hook in hooks:
        hook.remove()
    rows = torch.linspace(0, 1, norms[0].running_means.shape[0])[:, None]
    for m in norms:
        std = m.running_vars.sqrt()
        m.running_means.add_(0.2 * std * rows * torch.randn(m.running_means.shape, generator=gen))
        m.running_vars.mul_(torch.exp(0.2 * rows * torch.randn(m.running_vars.shape, generator=gen)))
    return model.eval()


def is_biggan_folder(folder: Path) -> bool:
    return (Path(folder) / WEIGHTS_NAME).is_file()


def load_state(path: Path) -> dict:
    """Read a pytorch_model.bin as plain tensors only; anything else is refused."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        # the weights-only unpickler names what it refused on a line of its own
        detail = next((l for l in lines if "global" in l.lower()), lines[0] if lines else type(e).__name__)
        raise SteerError(f"cannot read {path} as a plain tensor file (refused, nothing in it was run): "
                         f"{detail}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SteerError(f"{path} is not a state dict of tensors")
    return state


def check_keys(model: nn.Module, state: dict, path) -> None:
    """Refuse a state dict whose keys differ from the model's, naming the differences."""
    expected, found = set(model.state_dict()), set(state)

    def some(keys):
        keys = sorted(keys)
        return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

    problems = []
    if expected - found:
        problems.append(f"missing {some(expected - found)}")
    if found - expected:
        problems.append(f"unexpected {some(found - expected)}")
    if problems:
        raise SteerError(f"{path} does not match its config.json: {'; '.join(problems)}")


def load_biggan_folder(folder) -> BigGANDeep:
    """A folder with the release's pytorch_model.bin and config.json -> BigGANDeep, through
    the registry's guarded path (config schema, sizes, shapes, finite weights)."""
    from .registry import assemble
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file():
        raise SteerError(f"{folder} has {WEIGHTS_NAME} but no {CONFIG_NAME} (both come with the release)")
    config, load, what = biggan_folder_parts(folder, read_config(folder))
    model = assemble(FAMILY, config, str(folder / CONFIG_NAME), load, what)
    model.name = folder.name
    return model


def save_biggan_folder(model: BigGANDeep, folder) -> None:
    """Write the release's format (for tests and random-weight experiments)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(model.cfg, indent=2) + "\n")  # the release's keys only


def biggan_folder_parts(folder: Path, config: dict):
    """The registry's hook for a release folder (pytorch_model.bin + config.json):
    (config, state_fn, what), or None for another kind of folder."""
    if "family" in config or not is_biggan_folder(folder):
        return None
    weights = Path(folder) / WEIGHTS_NAME
    return config, lambda: load_state(weights), f"{weights} does not match its config.json"


def read_biggan_folder(folder: Path, config: dict):
    """A release folder -> BigGANDeep (or None for another kind of folder)."""
    if "family" in config or not is_biggan_folder(folder):
        return None
    return load_biggan_folder(folder)


def build_biggan(config: dict) -> BigGANDeep:
    return BigGANDeep({k: v for k, v in config.items() if k not in ("family", "class_names")})


def small_biggan(seed: int = 0) -> BigGANDeep:
    return random_biggan(128, channel_width=4, seed=seed, batch=2)


FAMILY = Family(name="biggan-deep", build=build_biggan, small=small_biggan, read_folder=read_biggan_folder,
                check_config=check_biggan_config, folder_parts=biggan_folder_parts,
                weights_file=lambda folder: Path(folder) / WEIGHTS_NAME)
