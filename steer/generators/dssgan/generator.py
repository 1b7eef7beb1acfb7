"""The DSS-GAN generator, with the official module and parameter names so that official
state_dicts load with strict=True.

    z = [z_base | z_dir_1 | ... | z_dir_K]          one subvector per scan direction
    z_base -> 64 tokens -> Mamba blocks (+0.3 residual) + class embedding -> 8x8 map
    for each Mamba stage (8, 16, ..., resolution/2):
        each block: per direction, scan the map to a sequence, FiLM it with
        (gamma, beta) = MLP([z_dir_k, class_embed_k(y)]), run that direction's Mamba block,
        unscan; merge the directions with softmax routing weights
        stage output + 0.3 * stage input; upsample x2 (nearest, conv3x3, GELU)
    modulated 3x3 conv (style = class) at full resolution -> convs -> tanh RGB

The official code fixes the Mamba stages at 8..64 (128 px) or 8..128 (256 px) or 8..256
(512 px); here the stages follow from `resolution`, so the same code builds 32 px models
that train on a CPU. Configs use the official config dict's keys (`ch_8x8`, `mamba_8x8`, ...).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SteerError
from ..base import FirstLayer, Generator
from .mamba import MambaBlock

DIRECTIONS = ("row_fwd", "row_bwd", "col_fwd", "col_bwd", "diag_left", "diag_right")
ROTATION_K = {"none": 0, "rot90": 1, "rot180": 2, "rot270": 3}
CLASS_EMBED_DIM = 128  # the DLR class embeddings; fixed in the official code
# official default MLP widths per stage when the config gives none; 128 px and up are fixed at 512
DEFAULT_MLP_HIDDEN = {8: 256, 16: 384, 32: 512, 64: 640}
# options the official code has but no official config switches on; refused rather than ignored
UNSUPPORTED = ("use_blur_upsample", "use_pixel_shuffle_32", "use_pixel_shuffle_64",
               "use_lightweight_attention", "use_multiscale_skips")


def _scan_positions(height: int, width: int, direction: str) -> list:
    """Flat (row-major) positions in the order a direction visits them."""
    cells = [(i, j) for i in range(height) for j in range(width)]
    if direction == "row_fwd":
        key = lambda c: (c[0], c[1])
    elif direction == "row_bwd":  # each row right to left; rows still top to bottom
        key = lambda c: (c[0], -c[1])
    elif direction == "col_fwd":
        key = lambda c: (c[1], c[0])
    elif direction == "col_bwd":  # each column bottom to top; columns left to right
        key = lambda c: (c[1], -c[0])
    elif direction == "diag_left":  # anti-diagonals i+j = k from (0,0); within one, i descends
        key = lambda c: (c[0] + c[1], -c[0])
    elif direction == "diag_right":  # same anti-diagonals, i ascends
        key = lambda c: (c[0] + c[1], c[0])
    else:
        raise SteerError(f"unknown scan direction '{direction}': choose from {', '.join(DIRECTIONS)}")
    return [i * width + j for i, j in sorted(cells, key=key)]


_SCAN_INDICES: dict = {}


def scan_indices(height: int, width: int, direction: str, device=None):
    """(order, inverse): gather indices that turn a flattened map into the direction's
    sequence and back. Cached per (height, width, direction, device)."""
    device = torch.device(device or "cpu")
    key = (height, width, direction, device)
    if key not in _SCAN_INDICES:
        # on the CPU explicitly: a model built on the meta device (the registry's size check)
        # must not leave meta tensors in this cache
        order = torch.tensor(_scan_positions(height, width, direction), dtype=torch.long, device="cpu")
        _SCAN_INDICES[key] = (order.to(device), torch.argsort(order).to(device))
    return _SCAN_INDICES[key]


def scan(h, direction: str):
    """(B, C, H, W) map -> (B, L, C) sequence in the direction's order."""
    order, _ = scan_indices(h.shape[2], h.shape[3], direction, h.device)
    return h.flatten(2).index_select(2, order).transpose(1, 2)


def unscan(seq, direction: str, height: int, width: int):
    """Inverse of `scan`: (B, L, C) -> (B, C, H, W)."""
    _, inverse = scan_indices(height, width, direction, seq.device)
    out = seq.transpose(1, 2).index_select(2, inverse)
    return out.reshape(seq.shape[0], seq.shape[2], height, width)


class FiLM(nn.Module):
    """Per-class scale and shift of a feature map (built in every official stage; used when
    the config's film_enabled switches it on)."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features = num_features
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x, y):
        return self.gamma(y)[:, :, None, None] * x + self.beta(y)[:, :, None, None]


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, num_tokens: int, dim: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)

    def forward(self, x):
        return x + self.pos


class DirectionalWeighting(nn.Module):
    """Routing logits: learned base weights, plus a linear map of the whole z_dir."""

    def __init__(self, num_directions: int, z_routing_dim: int | None = None, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature
        self.base_weights = nn.Parameter(torch.ones(num_directions))
        self.use_z_modulation = z_routing_dim is not None
        if self.use_z_modulation:
            self.z_to_weights = nn.Linear(z_routing_dim, num_directions)
            nn.init.zeros_(self.z_to_weights.weight)
            nn.init.zeros_(self.z_to_weights.bias)

    def forward(self, z_dir=None, class_bias=None):
        logits = self.base_weights[None]
        if self.use_z_modulation and z_dir is not None:
            logits = logits + self.z_to_weights(z_dir)
        if class_bias is not None:
            logits = logits + class_bias
        return F.softmax(logits / self.temperature, dim=-1)


class DirectionalMambaBlock(nn.Module):
    """One DLR block (official name RealVisionMamba2x2OnMap): a Mamba block per scan
    direction, each FiLM-modulated by its own z_dir chunk and class embedding, merged by
    softmax routing."""

    def __init__(self, ch: int, d_state: int, d_conv: int, expand: float, spatial_size: int,
                 scan_directions, z_routing_dim: int, z_mlp_hidden: int, num_classes: int,
                 temperature: float = 2.0, routing_clip: float | None = None,
                 residual_routing: bool = False, use_z_routing: bool = True):
        super().__init__()
        self.ch, self.spatial_size = ch, spatial_size
        self.scan_directions = list(scan_directions)
        self.num_directions = len(self.scan_directions)
        self.routing_clip, self.residual_routing = routing_clip, residual_routing
        self.use_z_routing, self.num_classes = use_z_routing, num_classes
        if use_z_routing:
            if z_routing_dim % self.num_directions:
                raise SteerError(f"z_dir_dim {z_routing_dim} does not split into "
                                 f"{self.num_directions} equal direction chunks")
            self.z_chunk_dim = z_routing_dim // self.num_directions
            self.class_embeds = nn.ModuleDict()
            for direction in self.scan_directions:
                self.class_embeds[direction] = nn.Embedding(num_classes, CLASS_EMBED_DIM)
                nn.init.normal_(self.class_embeds[direction].weight, 0, 0.25)
            # class -> routing bias, scaled by a learned per-direction alpha that starts small
            self.class_routing_proj = nn.Linear(CLASS_EMBED_DIM, self.num_directions)
            nn.init.normal_(self.class_routing_proj.weight, std=0.001)
            nn.init.zeros_(self.class_routing_proj.bias)
            self.routing_alpha = nn.Parameter(torch.full((self.num_directions,), 0.01))
            self.z_projections = nn.ModuleDict()
            for direction in self.scan_directions:
                self.z_projections[direction] = nn.Sequential(
                    nn.Linear(self.z_chunk_dim + CLASS_EMBED_DIM, z_mlp_hidden), nn.GELU(),
                    nn.Linear(z_mlp_hidden, 2 * ch))
        self.mamba_blocks = nn.ModuleDict()
        for direction in self.scan_directions:
            self.mamba_blocks[direction] = MambaBlock(ch, d_state=d_state, d_conv=d_conv, expand=expand)
        self.direction_weighting = DirectionalWeighting(
            self.num_directions, z_routing_dim if use_z_routing else None, temperature)
        if {"diag_left", "diag_right"} & set(self.scan_directions):
            # kept only so state_dicts match the official module; scans use `scan_indices`
            self.register_buffer("diag_left_indices",
                                 scan_indices(spatial_size, spatial_size, "diag_left")[0].clone())
            self.register_buffer("diag_right_indices",
                                 scan_indices(spatial_size, spatial_size, "diag_right")[0].clone())

    def routing_weights(self, z_dir, class_embeds):
        """Softmax weights over directions, (B, K) or (1, K)."""
        if not self.use_z_routing or z_dir is None:
            return self.direction_weighting()
        mean_embed = sum(class_embeds) / self.num_directions
        class_bias = self.routing_alpha.abs()[None] * self.class_routing_proj(mean_embed)
        return self.direction_weighting(z_dir, class_bias)

    def modulation(self, index: int, z_dir, class_embed):
        """(gamma, beta), each (B, 1, C), for one direction's sequence."""
        chunk = z_dir[:, index * self.z_chunk_dim:(index + 1) * self.z_chunk_dim]
        direction = self.scan_directions[index]
        gamma, beta = self.z_projections[direction](torch.cat([chunk, class_embed], 1)).chunk(2, 1)
        clip = self.routing_clip
        if self.residual_routing:
            if clip is not None:
                gamma, beta = 1.0 + clip * torch.tanh(gamma), clip * torch.tanh(beta)
            else:
                gamma = gamma + 1.0
        elif clip is not None:
            gamma, beta = gamma.clamp(-clip, clip), beta.clamp(-clip, clip)
        return gamma[:, None], beta[:, None]

    def forward(self, h, z_dir, classes, rot_k: int = 0, direction_classes=None):
        """direction_classes: optional (B, K) class per direction (the class override); the
        per-direction embeddings and the routing bias then use it."""
        if rot_k:
            h = torch.rot90(h, rot_k, dims=(2, 3))
        height, width = h.shape[2:]
        class_embeds = []
        if self.use_z_routing and z_dir is not None:
            for i, direction in enumerate(self.scan_directions):
                y = classes if direction_classes is None else direction_classes[:, i]
                class_embeds.append(self.class_embeds[direction](y))
        weights = self.routing_weights(z_dir, class_embeds)
        out = 0
        for i, direction in enumerate(self.scan_directions):
            seq = scan(h, direction)
            if class_embeds:
                gamma, beta = self.modulation(i, z_dir, class_embeds[i])
                seq = gamma * seq + beta
            seq = self.mamba_blocks[direction](seq)
            out = out + weights[:, i, None, None, None] * unscan(seq, direction, height, width)
        if rot_k:
            out = torch.rot90(out, -rot_k, dims=(2, 3))
        return out


class StyleGAN2Block(nn.Module):
    """Modulated 3x3 conv with demodulation, styled by the class alone; bias, leaky ReLU."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.channels = channels
        self.style = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.style.weight)  # weight x (style + 1) starts as the plain conv
        self.weight = nn.Parameter(torch.randn(channels, channels, 3, 3) * (2 / (channels * 9)) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.noise_strength = nn.Parameter(torch.zeros(1))

    def forward(self, x, y):
        batch, channels, height, width = x.shape
        weight = self.weight[None] * (self.style(y)[:, None, :, None, None] + 1)
        weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        # one grouped conv runs every sample with its own weights
        out = F.conv2d(x.reshape(1, batch * channels, height, width),
                       weight.reshape(batch * channels, channels, 3, 3), padding=1, groups=batch)
        out = out.reshape(batch, channels, height, width) + self.bias[None, :, None, None]
        if self.training and self.noise_strength.item() > 0:
            out = out + self.noise_strength * torch.randn(batch, 1, height, width, device=x.device, dtype=x.dtype)
        return F.leaky_relu(out, 0.2)


def _upsample(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.GELU())


def init_for_training(generator: nn.Module) -> nn.Module:
    """The official training-time initialisation: every Mamba conv1d Xavier-uniform with gain
    0.8, then Xavier-uniform weights and zero biases for every Linear and Conv2d, the Linear
    layers inside the Mamba blocks included (so dt_proj's bias starts at 0). Embeddings,
    positional encodings and routing parameters keep their own initialisation."""
    for module in generator.modules():
        if isinstance(module, MambaBlock):
            nn.init.xavier_uniform_(module.mamba.conv1d.weight, gain=0.8)
    for module in generator.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return generator


def mamba_stage_sizes(resolution: int) -> list:
    """Map sizes with Mamba stages: 8, 16, ..., resolution/2."""
    sizes, size = [], 8
    while size < resolution:
        sizes.append(size)
        size *= 2
    return sizes


class DSSGANGenerator(Generator):
    family = "dssgan"

    def __init__(self, config: dict, name: str = "dssgan"):
        super().__init__()
        self.cfg = copy.deepcopy(config)
        cfg = self.cfg
        self.name = name
        resolution = int(cfg.get("resolution", 512))
        if resolution < 16 or resolution & (resolution - 1):
            raise SteerError(f"DSS-GAN resolution must be a power of two, at least 16 (got {resolution})")
        for option in UNSUPPORTED:
            if cfg.get(option):
                raise SteerError(f"DSS-GAN option '{option}' is not supported by steer "
                                 "(no official config uses it)")
        self.resolution, self.num_classes = resolution, int(cfg["num_classes"])
        self.latent_dim = self.z_dim = int(cfg["z_dim"])
        self.z_tok_dim = int(cfg.get("z_tok_dim", self.z_dim // 2))
        self.z_dir_dim = self.z_dim - self.z_tok_dim
        self.use_vit_residual = bool(cfg.get("use_vit_residual", False))
        self.token_residual_weight = float(cfg.get("token_residual_weight", 0.3))
        self.spatial_residual_weight = float(cfg.get("spatial_residual_weight", 0.3))
        self.temperature = float(cfg.get("temperature", 2.0))
        self.rotation_modes = list(cfg.get("rotation_modes", ["none", "rot180"]))
        self.film_enabled = dict(cfg.get("film_enabled", {}))
        self.stage_sizes = mamba_stage_sizes(resolution)
        ch = {s: int(cfg[f"ch_{s}x{s}"]) for s in self.stage_sizes}
        top_default = {256: 196, 512: 48}.get(resolution)
        top_key = f"ch_{resolution}x{resolution}"
        if top_key not in cfg and top_default is None:
            raise SteerError(f"DSS-GAN config needs '{top_key}'")
        ch[resolution] = int(cfg.get(top_key, top_default))
        self.scan_directions = list(cfg[f"mamba_{self.stage_sizes[0]}x{self.stage_sizes[0]}"]["scan_directions"])

        tokens = cfg["mamba_tokens"]
        self.z_to_tokens = nn.Linear(self.z_tok_dim, 64 * ch[8])
        self.pos_enc64 = LearnedPositionalEncoding(64, ch[8])
        self.mamba_tokens = nn.ModuleList(
            MambaBlock(ch[8], d_state=tokens["d_state"], d_conv=tokens["d_conv"], expand=tokens["expand"])
            for _ in range(tokens["depth"]))
        self.class_embed = nn.Embedding(self.num_classes, ch[8])
        nn.init.normal_(self.class_embed.weight, std=0.02)

        mlp_hidden = cfg.get("z_mlp_hidden", {})
        for size in self.stage_sizes:
            key = f"{size}x{size}"
            stage = cfg[f"mamba_{key}"]
            if stage.get("noise") or stage.get("use_dense"):
                raise SteerError(f"DSS-GAN stage {key}: noise injection and dense connections are "
                                 "not supported by steer (no official config uses them)")
            if list(stage["scan_directions"]) != self.scan_directions:
                raise SteerError("DSS-GAN stages must share one list of scan directions "
                                 "(the latent holds one chunk per direction)")
            hidden = 512 if size >= 128 else int(mlp_hidden.get(key, DEFAULT_MLP_HIDDEN[size]))
            blocks = nn.ModuleList(
                DirectionalMambaBlock(
                    ch[size], stage["d_state"], stage["d_conv"], stage["expand"], size,
                    stage["scan_directions"], self.z_dir_dim, hidden, self.num_classes,
                    temperature=self.temperature, routing_clip=stage.get("routing_clip"),
                    residual_routing=stage.get("residual_routing", False),
                    use_z_routing=stage.get("use_z_routing", True))
                for _ in range(stage["depth"]))
            self.add_module(f"mamba_{key}", blocks)
            self.add_module(f"film_{key}", FiLM(ch[size], self.num_classes))
            self.add_module(f"up_{size}_to_{2 * size}", _upsample(ch[size], ch[2 * size]))
        self.add_module(f"style_refine_{resolution}", StyleGAN2Block(ch[resolution], self.num_classes))

        out_cfg = cfg["output"]
        layers, in_ch = [], ch[resolution]
        for out_ch in out_cfg.get("refine_channels", [64]):
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.GELU()]
            in_ch = out_ch
        self.refine = nn.Sequential(*layers) if layers else nn.Identity()
        self.final_conv = nn.Conv2d(in_ch, out_cfg["final_ch"], 3, padding=1)
        self.to_rgb = nn.Conv2d(out_cfg["final_ch"], 3, 1)

    # -- the Generator interface -----------------------------------------------------------

    def latent_layout(self) -> dict:
        """Name -> slice of z: the token-stage part and one chunk per scan direction."""
        layout = {"z_base": slice(0, self.z_tok_dim)}
        chunk = self.z_dir_dim // len(self.scan_directions)
        for i, direction in enumerate(self.scan_directions):
            start = self.z_tok_dim + i * chunk
            layout[direction] = slice(start, start + chunk)
        return layout

    def first_layer(self) -> FirstLayer:
        """The token projection z_to_tokens: z_base (the first z_tok_dim entries of z) -> 64
        tokens, token t at row t // 8, column t % 8 of the 8x8 grid, channels last. The
        learned positional encoding is added before anything nonlinear, so it is part of
        the bias; the class embedding joins after the token Mamba blocks and is not."""
        c, d = self.z_to_tokens.out_features // 64, self.z_tok_dim
        weight = self.z_to_tokens.weight.reshape(8, 8, c, d).permute(2, 0, 1, 3)
        bias = (self.z_to_tokens.bias.reshape(64, c) + self.pos_enc64.pos[0]).reshape(8, 8, c).permute(2, 0, 1)
        return FirstLayer(weight, bias, self.latent_layout()["z_base"])

    def config(self) -> dict:
        return {"family": self.family, "generator": copy.deepcopy(self.cfg)}

    def synthesize(self, latent, classes=None, space=None, truncation=None, direction_classes=None,
                   stage_latents=None):
        """latent (B, z_dim), classes (B,) int64 -> images (B, 3, R, R) in (-1, 1).

        direction_classes: optional (B, K) int64 class per scan direction, replacing the
        class for that direction's embedding (the official viewer's class override).
        stage_latents: optional {stage size: (B, z_dim) latent} whose direction part feeds
        that Mamba stage instead of `latent`'s (to perturb one scale at a time)."""
        self.check_space(space or "z")
        if classes is None:
            raise SteerError("DSS-GAN is class-conditional: pass classes")
        if direction_classes is not None:
            direction_classes = torch.as_tensor(direction_classes, dtype=torch.long, device=latent.device)
            direction_classes = direction_classes.expand(latent.shape[0], len(self.scan_directions))
        unknown = set(stage_latents or {}) - set(self.stage_sizes)
        if unknown:
            raise SteerError(f"no Mamba stage at size {sorted(unknown)[0]}: stages are "
                             f"{', '.join(map(str, self.stage_sizes))}")
        return self._forward(latent, classes, direction_classes, stage_latents or {})

    def _rotation(self) -> int:
        """The training-only random rotation: one draw per forward, for the whole batch."""
        if not self.training:
            return 0
        mode = self.rotation_modes[int(torch.randint(len(self.rotation_modes), (1,)))]
        return ROTATION_K[mode]

    def _forward(self, z, y, direction_classes=None, stage_latents=None):
        batch = z.shape[0]
        z_tok, z_dir = z.split([self.z_tok_dim, self.z_dir_dim], dim=1)
        rot_k = self._rotation()
        t = self.pos_enc64(self.z_to_tokens(z_tok).view(batch, 64, -1))
        t_in = t
        for block in self.mamba_tokens:
            t = block(t)
        if self.use_vit_residual:
            t = t + self.token_residual_weight * t_in
        t = t + self.class_embed(y)[:, None]
        h = t.transpose(1, 2).reshape(batch, -1, 8, 8)
        for size in self.stage_sizes:
            key = f"{size}x{size}"
            h_in = h
            stage_z_dir = z_dir
            if stage_latents and size in stage_latents:
                stage_z_dir = stage_latents[size][:, self.z_tok_dim:]
            for block in getattr(self, f"mamba_{key}"):
                h = block(h, stage_z_dir, y, rot_k, direction_classes)
            if self.use_vit_residual:
                h = h + self.spatial_residual_weight * h_in
            if self.film_enabled.get(key, False):
                h = getattr(self, f"film_{key}")(h, y)
            h = getattr(self, f"up_{size}_to_{2 * size}")(h)
        h = getattr(self, f"style_refine_{self.resolution}")(h, y)
        h = F.gelu(self.final_conv(self.refine(h)))
        return torch.tanh(self.to_rgb(h))

