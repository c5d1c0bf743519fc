"""Export page: download the current pruned (and fine-tuned) model as a zip or ONNX."""

import json

import streamlit as st

from ui.engine import current_model, keep_of, playground
from ui.shell import open_page
from vitcore.pruning.export import export_zip, onnx_bytes, provenance

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
if own:
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
zip_data = export_zip(model, info)
c1, c2 = st.columns(2)
c1.download_button(
    "Download model (.zip: safetensors + config)",
    zip_data,
    file_name="vit-pruned.zip",
    mime="application/zip",
    key="dl_zip",
)
c1.caption(f"{len(zip_data) / 1e6:.2f} MB")
if c2.button("Prepare ONNX", key="prep_onnx"):
    state.onnx = (pg.key(mask), onnx_bytes(model))
onnx = state.onnx
if onnx and onnx[0] == pg.key(mask):
    c2.download_button(
        "Download ONNX", onnx[1], file_name="vit-pruned.onnx", mime="application/octet-stream", key="dl_onnx"
    )
    c2.caption(f"{len(onnx[1]) / 1e6:.2f} MB · input 'pixels' [batch, 3, 64, 64] normalized · output 'logits'")

st.subheader("What the zip contains")
st.markdown("`model.safetensors` (weights) and `config.json`:")
shown = {k: v for k, v in info.items() if k != "classes"} | {
    "model": model.config.to_dict(),
    "classes": f"{len(info.get('classes', {}).get('wnids', []))} wnids and names",
}
st.json(json.loads(json.dumps(shown)), expanded=False)
st.subheader("Load it")
st.code('import vitcore\nmodel = vitcore.load_pretrained("vit-pruned.zip")', language="python")
