"""``hinerv model``: show a HiNeRV architecture and its parameter / MAC counts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hinerv.cli._app import app, out_console, print_json, print_table
from hinerv.errors import ConfigError

#: the ladder's sizes, for the help (:data:`hinerv.model.sizes.SIZES`, which imports torch; a test
#: keeps the two equal)
SIZE_NAMES = ("xxs", "xs", "s", "m", "l", "xl", "xxl")

__all__ = ["model"]


@app.command("model")
def model(
    preset: Annotated[
        str | None, typer.Option("--preset", "-p", help="reference preset, e.g. uvg-hinerv-s")
    ] = None,
    size: Annotated[
        str | None, typer.Option("--size", "-s", help=f"ladder size: {', '.join(SIZE_NAMES)}")
    ] = None,
    width: Annotated[int | None, typer.Option("--width", help="frame width (pixels)")] = None,
    height: Annotated[int | None, typer.Option("--height", help="frame height (pixels)")] = None,
    frames: Annotated[int | None, typer.Option("--frames", help="number of frames")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON to stdout")] = False,
) -> None:
    """Print a model's parameter split, derived architecture and decoder MACs per pixel.

    Use --preset NAME (its reference geometry; --width/--height/--frames override it) or
    --size S --width W --height H --frames T.
    """
    from hinerv.model.arch import derive_arch, padded_size
    from hinerv.model.counts import count_params_arch, macs_per_pixel
    from hinerv.model.presets import load_preset
    from hinerv.model.sizes import BITS_PER_PARAM, ladder_config

    if (preset is None) == (size is None):
        raise ConfigError("give exactly one of --preset or --size")
    if preset is not None:
        cfg, (t0, h0, w0) = load_preset(preset)
        t, h, w = frames or t0, height or h0, width or w0
        source = f"preset {preset}"
    else:
        if width is None or height is None or frames is None:
            raise ConfigError("--size needs --width, --height and --frames")
        t, h, w = frames, height, width
        cfg = ladder_config(str(size), w, h, t)
        source = f"size {size}"
    hp, wp = padded_size(h, w, cfg)
    arch = derive_arch(cfg, t, hp, wp)
    counts = count_params_arch(arch)
    macs = macs_per_pixel(cfg, t, h, w)
    pixels = t * h * w
    result: dict[str, Any] = {
        "source": source,
        "video": {"frames": t, "height": h, "width": w},
        "padded": {"height": hp, "width": wp, "pad_bottom": hp - h, "pad_right": wp - w},
        "params": counts["total"],
        "params_network": counts["network"],
        "params_grids": counts["base_grid"] + counts["local_grids"],
        "params_base_grid": counts["base_grid"],
        "params_local_grids": counts["local_grids"],
        "params_enc_linears": counts["enc_linears"],
        "grid_share": (counts["base_grid"] + counts["local_grids"]) / counts["total"],
        "bpp_estimate_q6": BITS_PER_PARAM * counts["total"] / pixels,
        "macs_per_pixel": macs,
        "architecture": {
            "base_size": [arch.base_height, arch.base_width],
            "base_grid_frames": list(arch.base_frames),
            "base_grid_channels": list(arch.base_channels),
            "base_halo": arch.base_halo,
            "scales": list(cfg.scales),
            "stage_channels": [st.c_out for st in arch.stages],
            "stage_sizes": [[st.height, st.width] for st in arch.stages],
            "stage_halos": [st.halo for st in arch.stages],
            "enc_channels": [list(st.enc_channels) for st in arch.stages],
        },
        "config": cfg.to_fields(),
    }
    if json_out:
        print_json(result)
        return
    print_table(
        f"HiNeRV parameters ({source}, {w}x{h}x{t})",
        {
            "network": counts["network"],
            "base grid": counts["base_grid"],
            "local grids": counts["local_grids"],
            "encoder linears": counts["enc_linears"],
            "total": counts["total"],
            "grid share": f"{result['grid_share']:.1%}",
            "est. bpp at 6 bits (~5 bits/param)": round(result["bpp_estimate_q6"], 5),
            "decoder MACs / pixel": round(macs, 1),
        },
    )
    print_table(
        "architecture",
        [
            {
                "stage": i + 1,
                "scale": st.scale,
                "size": f"{st.width}x{st.height}",
                "channels": f"{st.c_in}->{st.c_out}",
                "hidden": st.hidden,
                "depth": st.depth,
                "enc ch": "/".join(map(str, st.enc_channels)),
                "halo": st.halo,
            }
            for i, st in enumerate(arch.stages)
        ],
    )
    out_console.print(
        f"base {arch.base_width}x{arch.base_height} (T_g {'/'.join(map(str, arch.base_frames))}, "
        f"C_g {'/'.join(map(str, arch.base_channels))}), stem {arch.stem_in}->{arch.stem_out}, "
        f"padded {wp}x{hp} (+{wp - w}, +{hp - h})",
        highlight=False,
    )
