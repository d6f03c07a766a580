"""Take the selected stamps of a ready stamp set, with weight maps from each stamp's own noise."""
from blendphot import io
from blendphot.errors import InputError
from blendphot.stampset import take_stamps
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out = snakemake.input, snakemake.output
    stamps = take_stamps(io.load_array(inp.images), io.load_array(inp.segmentation), io.read_csv(inp.stampset),
                         io.read_csv(inp.catalog, required=["gid"]),
                         size=snakemake.params.stamps["size"],
                         max_missing_fraction=snakemake.params.stamps["max_missing_fraction"])
    if not len(stamps.catalog):
        raise InputError(f"{inp.images}: none of the {len(stamps.dropped)} selected stamps is usable "
                         f"(reasons: {stamps.dropped['reason'].value_counts().to_dict()})")
    io.save_array(out.images, stamps.images)
    io.save_array(out.weights, stamps.weights)
    io.save_array(out.segmentation, stamps.segmentation)
    io.write_csv(out.catalog, stamps.catalog)
    io.write_csv(out.dropped, stamps.dropped)
    run.log_metrics({"kept": len(stamps.catalog), "dropped": len(stamps.dropped),
                     "noise_sigma_median": float(stamps.catalog["noise_sigma"].median())})
