"""Model page: the model card, a gallery of eval images, per-class accuracy, and "try your own image"."""

import io

import altair as alt
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from ui.engine import current_model
from ui.gallery import GALLERY_SIZE, gallery_html
from ui.one_image import one_image_view
from ui.resources import shared_eval_logits
from ui.shell import open_page, trace_event
from vitcore.assets import example_images
from vitcore.data import normalize
from vitcore.evaluate import accuracy_text, per_class_accuracy
from vitcore.images import ImageError, load_rgb, to_model_size
from vitcore.pruning import count_macs, count_params

state = open_page()
ckpt, eval_set = state.ckpt, state.eval_set
model, cfg = ckpt.model, ckpt.model.config

st.title("Model")
st.page_link("pages/lesson.py", label="New here? The lesson walks a class through the app in eight steps.")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", f"{count_params(model):,}")
c2.metric("MACs / image", f"{count_macs(cfg) / 1e6:.1f} M")
metrics = ckpt.info.get("metrics", {})
# an exported model's card measured it on the eval set the app had (the bundled subset, say), not the full val split
bundled = metrics.get("eval_set") == "bundled"
card_set = (
    f"{metrics['val_images']:,} {'bundled ' if bundled else ''}val images" if "val_images" in metrics else "val split"
)
c3.metric(
    "Top-1 (card)",
    f"{metrics['val_top1']:.1%}" if "val_top1" in metrics else "n/a",
    help=f"measured on the {card_set}, as the model card says",
)
c4.metric(
    "Top-5 (card)",
    f"{metrics['val_top5']:.1%}" if "val_top5" in metrics else "n/a",
    help=f"measured on the {card_set}, as the model card says",
)
if bundled:
    st.caption(f"This model's card was measured on the {card_set} shipped with the app, not on the full val split.")
st.caption(
    f"Pre-norm ViT · depth {cfg.depth} · dim {cfg.dim} · heads per layer {cfg.heads} (head dim {cfg.head_dim}) · "
    f"MLP widths {cfg.mlp_widths} · patch {cfg.patch_size} · {cfg.num_classes} classes · chunk size {cfg.chunk_size}"
)
# a toggle, not an expander: an expander draws its JSON viewer (a large script for the browser) on every visit
if st.toggle("How it was trained", key="show_training"):
    st.json(ckpt.info.get("training", {}), expanded=False)
    if "provenance" in ckpt.info:
        st.json(ckpt.info["provenance"], expanded=False)


def shared_logits() -> torch.Tensor:
    return shared_eval_logits(model, eval_set, ckpt.sha256, state.data_key)


st.subheader("Gallery")
names = eval_set.names
f1, f2 = st.columns([3, 1])
pick = f1.multiselect(
    "Classes",
    options=list(range(len(names))),
    format_func=lambda i: names[i],
    key="gallery_classes",
    placeholder="all classes",
)
which = f2.selectbox("Show", ["all", "correct", "wrong"], key="gallery_filter")
idx = torch.arange(len(eval_set))
if pick:
    idx = idx[eval_set.chosen([eval_set.wnids[i] for i in pick])]
logits = None
if which != "all":  # the filter needs every prediction; otherwise the gallery draws first and the rest follows
    logits = shared_logits()
    correct_all = logits.argmax(1) == eval_set.labels
    idx = idx[correct_all[idx] == (which == "correct")]
caption = st.empty()
caption.caption(f"{len(idx)} images" if len(idx) else "no images match")
shown = idx[:GALLERY_SIZE]
if len(shown):
    # one element with the images inline: 32 separate image elements cost one request each, which under
    # six sessions at once doubled the time to a usable page (docs/measurements/load_test.json)
    st.markdown(
        gallery_html(model, eval_set, ckpt.sha256, state.data_key, tuple(shown.tolist()), logits),
        unsafe_allow_html=True,
    )
    trace_event("gallery")
logits = shared_logits()  # the whole eval set: computed once per model and data set, shared by every session
if len(idx):
    caption.caption(f"{len(idx)} images · top-1 {(logits[idx].argmax(1) == eval_set.labels[idx]).float().mean():.1%}")

st.subheader("Per-class accuracy")
acc = per_class_accuracy(logits, eval_set.labels, len(names))
df = pd.DataFrame({"class": names, "top1": acc.numpy()}).sort_values("top1", ascending=False)


def class_list(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r['class']} {r['top1']:.0%}" for _, r in rows.iterrows())


st.markdown(f"**Best:** {class_list(df.head(5))}  \n**Worst:** {class_list(df.tail(5).iloc[::-1])}")
counts = torch.bincount(eval_set.labels, minlength=len(names))
if state.classes:  # the chosen classes' own rows, each with its n and interval
    rows = [eval_set.class_index(w) for w in state.classes]
    st.dataframe(
        pd.DataFrame(
            {
                "chosen class": [names[c] for c in rows],
                "top-1 (n, 95% Wilson interval)": [accuracy_text(float(acc[c]), int(counts[c])) for c in rows],
            }
        ),
        hide_index=True,
    )
st.caption(
    f"Each class has {int(counts.min())}–{int(counts.max())} eval images: a class's top-1 moves in steps of "
    f"{1 / max(int(counts.max()), 1):.0%} or more."
)
# the 200-bar chart on demand: drawn on every visit it made the page slower to become usable for six
# browsers at once (docs/results/app.md)
if st.toggle(f"Chart of all {len(names)} classes", key="per_class_chart"):
    st.altair_chart(
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=None, axis=alt.Axis(labels=False, ticks=False)),
            y="top1:Q",
            tooltip=["class", alt.Tooltip("top1:Q", format=".0%")],
        )
        .properties(height=220),
        width="stretch",
    )

st.subheader("Try your own image")
side = cfg.image_size
upload_col, example_col = st.columns(2)
upload = upload_col.file_uploader(
    f"An image (any size; it is resized to {side}x{side} as the model sees it)",
    key="try_image",
    on_change=lambda: setattr(state, "try_image_last", "upload"),
)
examples = example_images()
gallery_picks = {f"gallery {n + 1}: {names[int(eval_set.labels[i])]}": int(i) for n, i in enumerate(shown.tolist())}
example = example_col.selectbox(
    "… or an example",
    ["none", *examples, *gallery_picks],
    key="try_example",
    help="val images outside the bundled subset, then the gallery's images in its order",
    on_change=lambda: setattr(state, "try_image_last", "example"),
)
chosen = None  # the image chosen last, whether uploaded or picked
if upload is not None and (state.try_image_last == "upload" or example == "none"):
    chosen = (upload.getvalue(), upload.name)
elif example in examples:
    chosen = (examples[example].read_bytes(), example)
elif example in gallery_picks:
    buffer = io.BytesIO()
    Image.fromarray(eval_set.images[gallery_picks[example]].permute(1, 2, 0).numpy()).save(buffer, "PNG")
    chosen = (buffer.getvalue(), example)
if chosen is not None:
    try:
        img = to_model_size(load_rgb(chosen[0], name=chosen[1]), side, state.ckpt.info.get("preprocessing"))
    except ImageError as e:
        st.error(f"Could not use that file: {e}")
    else:
        x = normalize(
            torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(side, side, 3).permute(2, 0, 1)[None],
            cfg,
        )
        left, mid, right = st.columns([1, 2, 2])
        left.image(img, caption=f"{chosen[1]}, as the model sees it ({side}x{side})", width=160)
        pruned = current_model(state)
        for col, title, m in ((mid, "Full model", model), (right, "Current pruned model", pruned)):
            col.markdown(f"**{title}**")
            if m is None:
                col.warning("Every component is off: no pruned model.")
                continue
            with torch.inference_mode():
                probs = m(x).softmax(-1)[0]
            top = probs.topk(5)
            col.dataframe(
                pd.DataFrame({"class": [names[i] for i in top.indices.tolist()], "probability": top.values.numpy()}),
                hide_index=True,
            )
        if st.toggle("Follow this image through the model", key="follow_image"):
            one_image_view(model, x, names, "try")
