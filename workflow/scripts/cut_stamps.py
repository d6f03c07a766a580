"""Cut the stamps of one field."""
from blendphot import io
from blendphot.errors import InputError
from blendphot.stamps import cut_stamps, open_mosaic
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, field = snakemake.input, snakemake.output, snakemake.wildcards.field
    selected = io.read_csv(inp.catalog, required=["gid", "field", "ra", "dec"])
    catalog = selected[selected["field"].astype(str) == field].reset_index(drop=True)
    if not len(catalog):
        raise InputError(f"field {field!r} (config key survey.candels.fields.{field}) matches no selected galaxy of "
                         f"{inp.catalog}: its FIELD values are {sorted(selected['field'].astype(str).unique())}")
    image_hdul, image, wcs = open_mosaic(inp.image)
    weight_hdul, weight, _ = open_mosaic(inp.weight)
    with image_hdul, weight_hdul:
        stamps = cut_stamps(image, weight, wcs, catalog, size=snakemake.params.stamps["size"],
                            max_missing_fraction=snakemake.params.stamps["max_missing_fraction"],
                            image_name=inp.image)
    io.save_array(out.images, stamps.images)
    io.save_array(out.weights, stamps.weights)
    io.write_csv(out.catalog, stamps.catalog)
    io.write_csv(out.dropped, stamps.dropped)
    run.log_metrics({"kept": len(stamps.catalog), "dropped": len(stamps.dropped),
                     **{f"dropped_{k}": v for k, v in stamps.dropped["reason"].value_counts().items()}})
