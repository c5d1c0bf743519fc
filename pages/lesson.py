"""Lesson page: a class walks through the product in eight steps, each opening the real page in the right state."""

import streamlit as st

from ui.engine import keep_of
from ui.service import run_discovery
from ui.shell import open_page
from vitcore.circuits.methods import TEACHING_PAIR
from vitcore.compute.workers import WorkerDied
from vitcore.errors import VitcoreError
from vitcore.inspect.report import component_to_open

LESSON_METHODS = TEACHING_PAIR  # the two methods step 3 compares
DEFAULT_CLASS = "n01443537"  # goldfish: distinctive, and the model gets most of them right

state = open_page()
ckpt, eval_set, discovery = state.ckpt, state.eval_set, state.discovery
st.title("Lesson: what is a circuit?")
st.markdown(
    "Eight steps, about one class period. Each step is one paragraph and a button that opens the real page, set up "
    "for the step. Come back here for the next one."
)
with st.expander("Six words first", expanded=True):
    st.markdown(
        "- **Head**: one of the attention units of a layer; it moves information between the patches of the image "
        "and the class token.\n"
        "- **MLP chunk**: a group of neurons in a layer's feed-forward part; it transforms what each token carries.\n"
        "- **Residual stream**: the running sum every head and chunk writes into; the last layer's class token is "
        "read out as the answer.\n"
        "- **Patching**: running the model with one component's output replaced, to see what changes.\n"
        "- **Corruption**: what the output is replaced with: the same component's output on another image "
        "(*resample*), its average, zero, or noise.\n"
        "- **KL**: how far the model's answer (all 200 probabilities) moves away from the full model's; 0 means "
        "no change."
    )

options = state.class_options()
labels = {w: label for label, w in options.items()}
default = state.classes[0] if state.classes else DEFAULT_CLASS
chosen_label = st.selectbox(
    "The class for this lesson",
    list(options),
    index=list(options).index(labels.get(default, next(iter(options)))),
    key="lesson_class",
)
wnid = options[chosen_label]


def use_class() -> None:
    state.classes = [wnid]
    st.session_state["class_pick"] = [chosen_label]


def open_gallery(show: str) -> None:
    """The Model page with its gallery on the lesson's class, showing ``show`` (all, correct or wrong)."""
    use_class()
    st.session_state["gallery_classes"] = [eval_set.class_index(wnid)]
    st.session_state["gallery_filter"] = show
    st.switch_page("pages/model.py")


st.header("1. Pick a class")
st.markdown(
    f"The model sorts {ckpt.model.config.image_size}x{ckpt.model.config.image_size} images into "
    f"{ckpt.model.config.num_classes} classes. We study one, **{chosen_label}**: the question of the lesson "
    "is which few of the model's parts it needs to recognise it."
)
if st.button("Open the Model page on this class", key="lesson_1"):
    open_gallery("all")

st.header("2. What it gets right and wrong")
st.markdown(
    "Before explaining a model, look at what it does. The gallery shows the eval images of the class with the "
    "model's answers; the per-class table shows how often it is right. Mistakes are clues: what did it confuse "
    "the class with?"
)
if st.button("Show only its mistakes", key="lesson_2"):
    open_gallery("wrong")

st.header("3. Score every component, two ways")
st.markdown(
    "A *circuit method* gives each head and MLP chunk a score: how much the answer would change if it were "
    "patched. EAP estimates it for all of them at once from one gradient; exact patching removes each one alone and "
    "measures the change, one forward pass each. Run both and compare their heatmaps: how often does the quick "
    "estimate point at the parts that really matter?"
)
if st.button("Run EAP and exact patching, then open the Circuits page", key="lesson_3"):
    use_class()
    try:  # a class on the same lesson asks for the same runs: the compute service runs each once for everyone
        for method in LESSON_METHODS:
            state.add_result(run_discovery(state, method))
    except (VitcoreError, WorkerDied) as e:
        st.error(str(e))
    else:
        state.active_result = len(state.results) - 1  # exact patching's, the second of the pair
        state.set_keep(keep_of(state, state.results[-1]))
        st.switch_page("pages/circuits.py")

st.header("4. Look inside the top head")
truth = [r for r in state.results if r.method == LESSON_METHODS[1] and r.classes == [wnid] and not r.is_edge]
top_head = None
if truth:
    r = truth[-1]
    # the highest-ranked head by exact patching whose removal lowers p(class) on most of the images the page shows
    top_head = component_to_open(ckpt.model, eval_set, [wnid], r.component_names, r.scores)
st.markdown(
    "A score says *that* a head matters, not *what it does*. The Component page shows where it looks (the class "
    "token's attention over the image), which classes it pushes up and down, and the images where removing it "
    "changes the answer most."
    + (
        f" By exact patching, the top head for this class whose removal lowers its probability on most images is "
        f"**{top_head}**."
        if top_head
        else " (Run step 3 first.)"
        if not truth
        else " (No head among exact patching's top eight lowers the class's probability on most images.)"
    )
)
if st.button("Open the Component page on the top head", key="lesson_4", disabled=top_head is None):
    use_class()
    st.switch_page("pages/component.py", query_params={"component": str(top_head), "classes": wnid})

st.header("5. Remove the rest: accuracy and measured speed")
st.markdown(
    "Keep only the top half of the components by exact patching's score and cut the others out of the weights: the "
    "model is physically smaller. The Prune page shows what that costs in accuracy on the class and on all classes, "
    "and what it gains in *measured* speed on this machine. Switch single heads on and off and watch the figures."
)
if st.button("Open the Prune page with the top half kept", key="lesson_5", disabled=not truth):
    use_class()
    r = truth[-1]
    state.active_result = state.results.index(r)
    state.set_keep(keep_of(state, r))
    st.switch_page("pages/prune.py")

st.header("6. Fine-tune, compare, download")
st.markdown(
    "A pruned model recovers some accuracy with a short fine-tune: the Prune page's *Fine-tune to recover* runs it "
    "and then lets you switch between the model before and after fine-tuning. The Export page puts the full model "
    "and the one you export side by side (parameters, MACs, top-1 with its n and interval, latency) and downloads "
    "it as a zip that runs with onnxruntime alone."
)
c1, c2 = st.columns(2)
if c1.button("Open the Prune page to fine-tune", key="lesson_6a"):
    use_class()
    st.switch_page("pages/prune.py")
if c2.button("Open the Export page", key="lesson_6b"):
    st.switch_page("pages/export.py")

st.header("7. Bonus: a model that cheats")
st.markdown(
    "Circuits can also be the part to remove. A second model was trained to cheat: a small square in the corner "
    "means one class. The Shortcut page finds the few heads that carry the cheat and cuts them out."
)
if st.button("Open the Shortcut page", key="lesson_7"):
    st.switch_page("pages/shortcut.py")

st.header("8. Beyond components: features")
st.markdown(
    "A head mixes many things, so what it pushes can be hard to read. A sparse autoencoder rewrites the residual "
    "stream as a few active *features* out of thousands, each of which tends to fire on one recognisable thing. "
    "The Features page shows the features that fire most on this class, where they fire, which ones drive one "
    "image's answer, and what happens when you suppress or amplify one."
)
if st.button("Open the Features page on this class", key="lesson_8"):
    use_class()
    st.session_state["features_cls"] = chosen_label
    st.switch_page("pages/features.py")
