"""Features page: directions in the residual stream found by a sparse autoencoder, what each sees and pushes,
which drive a prediction, and what suppressing or amplifying one does."""

import pandas as pd
import streamlit as st

from ui.features import load_uploaded_sae, shared_index, shared_sae
from ui.shell import open_page
from vitcore.data import normalize
from vitcore.errors import VitcoreError
from vitcore.evaluate import accuracy_text
from vitcore.features.attribution import attribute_latents
from vitcore.features.shipped import saes_for
from vitcore.features.steer import logits_before_after, scale_latents, steer_effect
from vitcore.features.view import feature_label, feature_view, features_of_class
from vitcore.inspect.report import overlay, side_by_side
from vitcore.shortcut.views import enlarged

UPLOAD = "an SAE file of my own…"


@st.cache_data(max_entries=64, show_spinner="Suppressing the feature on every eval image…")
def shared_steer(sae_key: str, data_key: str, latent: int, factor: float, classes: tuple, _model, _sae, _data):
    return steer_effect(_model, _sae, _data, scale_latents([latent], factor), classes)


state = open_page()
ckpt, eval_set = state.ckpt, state.eval_set
st.title("Features")
st.caption(
    "A sparse autoencoder (SAE) rewrites the residual stream entering one layer as a few active *features* out of "
    "thousands, each a direction that tends to fire on one recognisable thing. Heads and MLP chunks mix many "
    "things; features are often easier to read."
)
shipped = {f"{c.name}: {p.name}": str(p) for p, c in saes_for(ckpt.sha256)}
choice = st.radio("Sparse autoencoder", [*shipped, UPLOAD], horizontal=True, key="features_sae")
try:
    if choice == UPLOAD:
        upload = st.file_uploader("SAE file (.safetensors from `python -m vitcore features train`)", key="sae_file")
        if upload is None:
            if not shipped:
                st.info(
                    "No SAE ships for this model. Train one on its training images and upload it here: "
                    "`python -m vitcore features train --model <this model> --data <train images> --out runs/sae`."
                )
            st.stop()
        sae, sae_key = load_uploaded_sae(upload, ckpt), f"upload:{upload.file_id}"
    else:
        sae, sae_key = shared_sae(shipped[choice], ckpt, ckpt.sha256), shipped[choice]
except VitcoreError as e:
    st.error(str(e))
    st.stop()
index = shared_index(sae_key, state.data_key, ckpt, sae, eval_set)
layer = sae.config.layer

options = state.class_options()
wnid_of = {v: k for k, v in options.items()}
wnids = list(options.values())
default = state.classes[0] if state.classes and state.classes[0] in wnids else wnids[0]
label_of_class = st.selectbox("Class", list(options), index=wnids.index(default), key="features_cls")
wnid = options[label_of_class]
ranked = features_of_class(index, eval_set, wnid, n=10)
st.subheader(f"Features that fire most on {eval_set.names[eval_set.class_index(wnid)]}")
rows = [
    {"feature": j, "gap": round(gap, 3), "label": (lab := feature_label(index, eval_set, j))[0], "purity": lab[1]}
    for j, gap in ranked
]
st.dataframe(pd.DataFrame(rows), hide_index=True)
st.caption(
    "Gap: mean strongest activation on this class's eval images minus on the others. Label: the most common class "
    "among the feature's 20 top images; purity: the share of them of that class."
)
if st.radio("Feature", ["one of these", "any, by number"], horizontal=True, key="features_by") == "one of these":
    latent = int(st.selectbox("Feature", [j for j, _ in ranked], key="features_latent"))
else:
    latent = int(st.number_input("Feature number", 0, sae.config.n_latents - 1, ranked[0][0], key="features_any"))

view = feature_view(ckpt.model, sae, eval_set, index, latent, top_n=8)
st.subheader(f"Feature {latent} at layer {layer}: {view.label} ({view.purity:.0%} of its top images)")
tiles = [overlay(eval_set.images[i], m.clamp_min(0)) for i, m in zip(view.top, view.patch_maps)]
st.image(side_by_side(tiles), width="stretch")
st.caption(
    f"Its {len(view.top)} top eval images, red where it fires (per patch). It fires on {view.frequency:.1%} of the "
    "eval images."
)
up, down = st.columns(2)
up.caption("Its direction pushes up (direct, logit per unit)")
up.dataframe(pd.DataFrame(view.direct_up, columns=["class", "logit"]), hide_index=True)
down.caption("…and down")
down.dataframe(pd.DataFrame(view.direct_down, columns=["class", "logit"]), hide_index=True)
st.markdown(
    f"**Measured**: removing it at every token of these {len(view.top)} images changes p(true class) by "
    f"{view.removal_p_true:+.3f} on average and changes {view.removal_flipped} prediction(s). The direct reading "
    "above skips every layer after this one (the final LayerNorm's scale frozen); it is not faithful for features "
    "of earlier layers, so trust the measured change."
)

st.subheader("Which features drive the prediction")
subset = eval_set.of_classes([wnid])
scope = st.radio("For", ["one image", f"all {len(subset)} eval images of the class"], horizontal=True, key="attr_scope")
pick = st.selectbox("Image", range(min(len(subset), 16)), format_func=lambda i: subset.files[i].rsplit("/", 1)[-1])
x = normalize(subset.images[pick : pick + 1], ckpt.model.config)
rows_of = slice(pick, pick + 1) if scope == "one image" else slice(0, len(subset))
attribution = attribute_latents(
    ckpt.model, sae, normalize(subset.images[rows_of], ckpt.model.config), subset.labels[rows_of], exact=10
)
table = pd.DataFrame(
    {
        "feature": attribution.latents[:10].tolist(),
        "label": [feature_label(index, eval_set, int(j))[0] for j in attribution.latents[:10]],
        "estimate": attribution.estimate[:10].numpy().round(4),
        "exact": attribution.exact[:10].numpy().round(4) if attribution.exact is not None else None,
    }
)
left, right = st.columns([1, 3])
left.image(enlarged(subset.images[pick]), width=192)
right.dataframe(table, hide_index=True)
rho = attribution.agreement()
st.caption(
    f"Change of log p(true class) when the feature is removed, mean over {attribution.images} image(s): estimated "
    "by attribution patching (one backward pass), and exact (the feature removed at every token, the model run "
    "again) for the ten largest estimates" + (f"; rank agreement (Spearman) {rho:.2f}." if rho is not None else ".")
)

st.subheader("Suppress or amplify it")
factor = st.select_slider(
    f"Feature {latent}'s activation ×", [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0], 0.0, key="features_factor"
)
before, after = logits_before_after(ckpt.model, sae, x, scale_latents([latent], factor))
p_before, p_after = before.softmax(-1)[0], after.softmax(-1)[0]
shown = dict.fromkeys(p_before.argsort(descending=True)[:3].tolist() + p_after.argsort(descending=True)[:3].tolist())
rows = [{"class": eval_set.names[c], "before": float(p_before[c]), "after": float(p_after[c])} for c in shown]
st.dataframe(pd.DataFrame(rows), hide_index=True)
on_class = steer_effect(ckpt.model, sae, subset, scale_latents([latent], factor))
st.markdown(
    f"On the {on_class.images} eval images of {wnid_of[wnid]}: top-1 {on_class.top1_before:.1%} → "
    f"{accuracy_text(on_class.top1_after, on_class.images)}, {on_class.flipped} prediction(s) changed."
)
if st.button("Measure on every eval image", key="features_steer_all"):
    effect = shared_steer(sae_key, state.data_key, latent, factor, (wnid,), ckpt.model, sae, eval_set)
    st.markdown(
        f"On all {effect.images} eval images: top-1 {effect.top1_before:.1%} → "
        f"{accuracy_text(effect.top1_after, effect.images)}, {effect.flipped} predictions changed, mean KL "
        f"{effect.kl:.4f}."
    )
