"""Export page: download the current pruned (and fine-tuned) model as a zip or ONNX."""

import json

import streamlit as st

from ui.before_after import before_after
from ui.deploy import show_deployment_table
from ui.engine import current_model, keep_of, playground
from ui.shell import open_page
from vitcore.deploy import export_program, onnx_model
from vitcore.pruning.export import export_zip, provenance

state = open_page()
ckpt = state.ckpt
st.title("Export")
model = current_model(state)
if model is None:
    st.error(
        "Every component is switched off: there is no model to export. Keep at least one head or chunk on the Prune "
        "page."
    )
    st.stop()
assert model is not None  # st.stop() ended the run above

mask = state.keep_mask()
pg = playground(state)
space = ckpt.model.components
result = state.active()
finetuned = state.finetuned is not None and state.finetuned == pg.key(mask)
kept = [space.names[i] for i in space.keep_from_mask(mask)]
# the setting describes this exact keep-set only if it is the result's own; otherwise say it was edited
own = (
    result is not None
    and result.kept is not None
    and (
        bool((keep_of(state, result) == (mask > 0.5).float()).all())
        if result.is_edge
        else set(result.kept) == set(kept)
    )
)
if own and result is not None and result.kept is not None:
    setting = result.params | ({"granularity": "edge", "kept_edges": len(result.kept)} if result.is_edge else {})
else:
    setting = {"edited_on_prune_page": True, "kept_fraction": round(len(kept) / len(space), 4)}
prov = provenance(
    ckpt.sha256,
    result.method if result else None,
    state.classes,
    result.corruption if result else None,
    setting,
    kept,
    finetuned,
)
fig = pg.slow(mask)  # this model's own figures, measured on the session's eval set
eval_set = state.eval_set
metrics = {
    "val_top1": fig.top1_all,
    "top1_chosen": fig.top1_chosen,
    "kl_chosen": fig.kl_chosen,
    "eval_set": state.data_key,
    "val_images": len(eval_set),
}
info = {k: v for k, v in ckpt.info.items() if k not in ("model", "provenance", "metrics")} | {
    "provenance": prov,
    "metrics": metrics,
}
st.markdown(
    f"**{len(kept)}/{len(space)} components kept** · heads per layer {model.config.heads} · MLP widths "
    f"{model.config.mlp_widths} · fine-tuned: {finetuned}"
)
key = (pg.key(mask), finetuned, id(state.fine_tune))  # a new fine-tune of one keep-set is another model
if state.exports_key != key:
    state.exports, state.exports_key = {}, key
if "zip" not in state.exports:
    with st.spinner("Writing the zip and its ONNX graph"):
        state.exports["zip"] = export_zip(model, info)
zip_data = state.exports["zip"]
st.subheader("Before and after")
before_after(pg.slow(space.ones()), fig, len(zip_data), len(eval_set), int(eval_set.chosen(state.classes).sum()))
c1, c2, c3, c4 = st.columns(4)
c1.download_button(
    "Download model (.zip: safetensors, config, ONNX, predict.py)",
    zip_data,
    file_name="vit-pruned.zip",
    mime="application/zip",
    key="dl_zip",
)
c1.caption(f"{len(zip_data) / 1e6:.2f} MB · `python predict.py IMAGE` runs it with onnxruntime alone")
size = model.config.image_size
FORMATS = {  # kind: (label, file name, how to make it, what it is)
    "onnx": ("ONNX", "vit-pruned.onnx", lambda m=model: onnx_model(m), "fp32"),
    "onnx-int8": ("int8 ONNX", "vit-pruned-int8.onnx", lambda m=model: onnx_model(m, "int8-weights"), "weights int8"),
    "program": ("torch.export", "vit-pruned.pt2", lambda m=model: export_program(m), "torch.export.load(...).module()"),
}
for column, (kind, (label, file_name, make, what)) in zip((c2, c3, c4), FORMATS.items()):
    if column.button(f"Prepare {label}", key=f"prep_{kind}"):
        with st.spinner(f"Exporting {label}"):
            state.exports[kind] = make()
    if kind in state.exports:
        column.download_button(
            f"Download {label}",
            state.exports[kind],
            file_name=file_name,
            mime="application/octet-stream",
            key=f"dl_{kind}",
        )
        column.caption(
            f"{len(state.exports[kind]) / 1e6:.2f} MB · {what} · input 'pixels' [batch, 3, {size}, {size}] normalized"
        )

show_deployment_table(state, model, key)

st.subheader("What the zip contains")
st.markdown(
    "`model.safetensors` (weights), `config.json`, `model.onnx` (the same model as ONNX) and `predict.py` "
    "(top-5 classes of an image with onnxruntime, numpy and Pillow only):"
)
shown = {k: v for k, v in info.items() if k != "classes"} | {
    "model": model.config.to_dict(),
    "classes": f"{len(info.get('classes', {}).get('wnids', []))} wnids and names",
}
st.json(json.loads(json.dumps(shown)), expanded=False)
st.subheader("Load it")
st.code('import vitcore\nmodel = vitcore.load_pretrained("vit-pruned.zip")', language="python")
