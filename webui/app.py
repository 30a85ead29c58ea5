"""The Gradio Blocks: four tabs wired to the functions of convert_tab, train_tab, vocoder_tab and search_tab.
User mistakes (WaveGradError) become one line on the page; conversions and renderings share one queue slot;
training and searches run as background jobs (jobs.py), one at a time."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from voiceconv.convert import ConvertOptions
from voiceconv.model import PRESETS
from voiceconv.pitch import METHODS
from wavegrad.errors import WaveGradError

from . import catalog, convert_tab, search_tab, train_tab, vocoder_tab
from .jobs import Job, JobRegistry

HEAVY = "heavy"  # concurrency id of in-process model work: one at a time, the rest wait in Gradio's queue
POLL_S = 2.0  # how often the job tabs refresh
PLAYER = {"type": "filepath", "interactive": False,  # the browser's own <audio controls> player for results
          "waveform_options": gr.WaveformOptions(show_recording_waveform=False)}
NONE = "none"


def guarded(fn: Callable[..., tuple], n_outputs: int) -> Callable[..., tuple]:
    """Wrap a handler whose outputs end with a status line: a user error leaves the other outputs as they
    were and shows its one-line message; any other exception is logged and shown as one line too."""

    def handler(*args: Any) -> tuple:
        try:
            return (*fn(*args), "")
        except WaveGradError as exc:
            message = str(exc)
        except Exception as exc:  # the app keeps serving whatever a handler hits
            traceback.print_exc()
            message = f"internal error ({exc.__class__.__name__}: {str(exc)[:200]}); see the app's console"
        return (*[gr.skip()] * n_outputs, f"**Error:** {message}")

    return handler


def dropdown(choices: list, value: Any) -> dict:
    """A dropdown update that keeps `value` when it is still offered, else takes the first choice."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    return gr.update(choices=choices, value=value if value in values else (values[0] if values else None))


def job_table(jobs: list[Job]) -> str:
    """Markdown table of jobs, newest first."""
    if not jobs:
        return "No runs yet."
    stamp = (lambda t: time.strftime("%m-%d %H:%M:%S", time.localtime(t)) if t else "")
    rows = [f"| {j.id} | {j.title} | {j.status} | {stamp(j.started)} | {stamp(j.finished)} |" for j in jobs]
    return "| job | what | status | started | finished |\n|---|---|---|---|---|\n" + "\n".join(rows)


def job_choices(jobs: list[Job]) -> list[tuple[str, str]]:
    return [(f"{j.title} ({j.status}, {j.id})", j.id) for j in jobs]


def build_app(logs: Path) -> gr.Blocks:
    """The app for the run root `logs` (voices, checkpoints, user schedules, jobs and outputs live there)."""
    logs = Path(logs)
    registry = JobRegistry(logs)
    with gr.Blocks(title="WaveGrad voice conversion") as app:
        gr.Markdown(f"## WaveGrad voice conversion\nRun root: `{logs.resolve()}`. Long jobs run one at a time; "
                    "a request that has to wait shows its place in the queue.")
        # the job tabs poll with timers kept outside the tabs (a Timer inside a gr.Tab duplicates tab buttons in
        # Gradio 6), each ticking only while its tab is shown
        timers = [gr.Timer(POLL_S, active=False), gr.Timer(POLL_S, active=False)]
        with gr.Tabs():
            tabs = [(_convert_tab(logs), None), (_train_tab(logs, registry, timers[0]), timers[0]),
                    (_vocoder_tab(logs), None), (_search_tab(logs, registry, timers[1]), timers[1])]
        for tab, own in tabs:
            tab.select(lambda own=own: [gr.Timer(active=timer is own) for timer in timers], None, timers,
                       show_progress="hidden")
    app.queue(default_concurrency_limit=8)
    return app


def _convert_tab(logs: Path) -> gr.Tab:
    voices = catalog.voices(logs)
    settings = catalog.load_settings(logs, voices[0]) if voices else catalog.DEFAULT_SETTINGS
    with gr.Tab("Convert") as tab:
        with gr.Row():
            with gr.Column():
                clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip to convert",
                                elem_id="convert-input")
                with gr.Row():
                    voice = gr.Dropdown(voices, value=voices[0] if voices else None, label="Voice (logs/<voice>/)",
                                        elem_id="convert-voice", scale=4)
                    refresh = gr.Button("Refresh voices", scale=1)
                with gr.Row():
                    target_refs = gr.Textbox(label="Zero-shot: folder of the target's recordings (30 s or more; "
                                             "with a voice trained with --zero-shot)", scale=4,
                                             elem_id="convert-refs")
                    auto_pitch = gr.Checkbox(True, label="Pitch into their range", scale=1)
                envelope_rate = gr.Slider(0, 1, ConvertOptions.envelope_rate, step=0.05,
                                          label="Zero-shot: spectral envelope from the recordings (timbre)")
                with gr.Row():
                    f0_up_key = gr.Slider(-24, 24, settings["f0_up_key"], step=1, label="Pitch shift (semitones)")
                    f0_method = gr.Dropdown(list(METHODS), value=settings["f0_method"], label="Pitch method")
                with gr.Row():
                    index_rate = gr.Slider(0, 1, settings["index_rate"], step=0.05, label="Index rate")
                    protect = gr.Slider(0, 0.5, settings["protect"], step=0.01, label="Protect (0.5 = off)")
                rms_mix_rate = gr.Slider(0, 1, settings["rms_mix_rate"], step=0.05,
                                         label="RMS mix (1 = keep the output loudness)")
                with gr.Row():
                    vocoder = gr.Dropdown(catalog.vocoders(logs), value=settings["vocoder"], label="Vocoder checkpoint")
                    schedule = gr.Dropdown(catalog.schedules(logs), value=settings["schedule"], label="Noise schedule")
                button = gr.Button("Convert", variant="primary", elem_id="convert-button")
            with gr.Column():
                status = gr.Markdown(elem_id="convert-status")
                output = gr.Audio(label="Converted", elem_id="convert-output", **PLAYER)
                picture = gr.Image(label="Mel: source and converted", show_label=False, interactive=False)
                rtf = gr.Markdown()
    controls = [f0_up_key, f0_method, index_rate, protect, rms_mix_rate, vocoder, schedule]

    def run(clip_path: str | None, name: str, *values: Any) -> tuple:
        result = convert_tab.convert(logs, clip_path, name, *values)
        return str(result.wav), result.picture, convert_tab.rtf_table(result.rtf, result.seconds)

    button.click(guarded(run, 3), [clip, voice, *controls, target_refs, auto_pitch, envelope_rate],
                 [output, picture, rtf, status], concurrency_limit=1, concurrency_id=HEAVY)

    def remembered(name: str | None) -> list:
        values = catalog.load_settings(logs, name) if name else catalog.DEFAULT_SETTINGS
        return [values[k] for k in ("f0_up_key", "f0_method", "index_rate", "protect", "rms_mix_rate", "vocoder",
                                    "schedule")]

    voice.change(remembered, voice, controls)

    def lists(name: str | None, vocoder_value: str, schedule_value: str) -> tuple:
        return (dropdown(catalog.voices(logs), name), dropdown(catalog.vocoders(logs), vocoder_value),
                dropdown(catalog.schedules(logs), schedule_value))

    for event in (refresh.click, tab.select):
        event(lists, [voice, vocoder, schedule], [voice, vocoder, schedule])
    return tab


def wire_job_buttons(registry: JobRegistry, kind: str, start_job: Callable[..., Job], start: gr.Button,
                     cancel: gr.Button, inputs: list[Any], selected: gr.Dropdown, status: gr.Markdown,
                     noun: str) -> None:
    """Start queues `start_job(*inputs)` and selects it in `selected`; cancel stops the selected job of `kind`."""

    def submit(*args: Any) -> tuple:
        job = start_job(*args)
        return (dropdown(job_choices(registry.jobs(kind)), job.id),)

    def stop(job_id: str | None) -> tuple:
        if not job_id:
            raise WaveGradError(f"no {noun} selected")
        registry.cancel(job_id)
        return ()

    start.click(guarded(submit, 1), inputs, [selected, status])
    cancel.click(guarded(stop, 0), selected, status)


def _train_tab(logs: Path, registry: JobRegistry, timer: gr.Timer) -> gr.Tab:
    with gr.Tab("Train a voice") as tab:
        with gr.Row():
            with gr.Column():
                files = gr.File(file_count="multiple", type="filepath", label="Recordings of the target speaker")
                folder = gr.Textbox(label="... or a folder of recordings on this machine")
                exp = gr.Textbox(label="Voice name (the folder logs/<name>/)")
                with gr.Row():
                    epochs = gr.Number(20, precision=0, label="Epochs")
                    preset = gr.Dropdown(sorted(PRESETS), value="base", label="Model size")
                    f0_method = gr.Dropdown(list(METHODS), value="harvest", label="Pitch method")
                switches = gr.CheckboxGroup(list(train_tab.SWITCHES), label="Training data and content")
                with gr.Row():
                    start = gr.Button("Start (resumes an existing voice)", variant="primary")
                    cancel = gr.Button("Cancel the selected run", variant="stop")
                status = gr.Markdown()
            with gr.Column():
                selected = gr.Dropdown(label="Run", choices=[])
                progress = gr.Markdown()
                log = gr.Textbox(label="Log (last lines)", lines=8, max_lines=8, interactive=False)
        table = gr.Markdown()
        gr.Markdown("Runs continue when this tab or the app is closed; a restarted app lists them here.")

    wire_job_buttons(registry, train_tab.KIND, lambda *args: train_tab.start_training(registry, logs, *args),
                     start, cancel, [exp, folder, files, epochs, preset, f0_method, switches], selected, status, "run")

    def poll(job_id: str | None) -> tuple:
        jobs = registry.jobs(train_tab.KIND)
        job = next((j for j in jobs if j.id == job_id), jobs[0] if jobs else None)
        if job is None:
            return dropdown([], None), "", "", job_table(jobs)
        tail = "\n".join(train_tab.read_tail(job.log, 8192).splitlines()[-8:])
        return dropdown(job_choices(jobs), job.id), train_tab.describe(job, registry), tail, job_table(jobs)

    timer.tick(poll, selected, [selected, progress, log, table], show_progress="hidden")
    return tab


def _vocoder_tab(logs: Path) -> gr.Tab:
    schedules = catalog.schedules(logs, with_linear=True)
    with gr.Tab("Vocoder") as tab:
        with gr.Row():
            source = gr.File(type="filepath", label="Clip or mel file (.npy/.pt [n_mels, frames])")
            with gr.Column():
                checkpoint = gr.Dropdown(catalog.vocoders(logs), value=catalog.DEFAULT_SETTINGS["vocoder"],
                                         label="Vocoder checkpoint")
                first = gr.Dropdown(schedules, value=schedules[0][1], label="Schedule A")
                second = gr.Dropdown([(NONE, NONE), *schedules], value=catalog.LINEAR, label="Schedule B")
                linear = gr.Number(6, precision=0, label="Iterations of 'linear'")
                button = gr.Button("Render", variant="primary", elem_id="vocoder-render")
        status = gr.Markdown()
        columns = []
        with gr.Row():
            for title in ("Original", "Schedule A", "Schedule B"):
                with gr.Column(min_width=200):
                    columns.append((gr.Audio(label=title, **PLAYER),
                                    gr.Image(label=f"{title}: mel", show_label=False, interactive=False),
                                    gr.Markdown()))

    def run(path: str | None, spec: str, a: str, b: str, n: int) -> tuple:
        outputs: list[Any] = []
        original, rendering = vocoder_tab.render(logs, path, spec, a, n)
        model = vocoder_tab.vocoder(spec)
        outputs += [path if original.audio is not None else None, vocoder_tab.picture(original.mel, "original", model),
                    "" if original.audio is not None else "(a mel file: no original audio)"]
        for choice in (a, b):
            if choice == NONE:
                outputs += [None, None, ""]
                continue
            if choice != a:
                _, rendering = vocoder_tab.render(logs, path, spec, choice, n)
            title = f"{Path(choice).stem}, {rendering.iterations} iterations"
            outputs += [str(rendering.wav), vocoder_tab.picture(rendering.mel, title, model),
                        f"{rendering.iterations} iterations; log-mel L1 **{rendering.mel_l1:.3f}**; "
                        f"RTF **{rendering.rtf:.3f}**"]
        return tuple(outputs)

    button.click(guarded(run, 9), [source, checkpoint, first, second, linear],
                 [*[c for column in columns for c in column], status], concurrency_limit=1, concurrency_id=HEAVY)

    def lists(spec: str, a: str, b: str) -> tuple:
        fresh = catalog.schedules(logs, with_linear=True)
        return dropdown(catalog.vocoders(logs), spec), dropdown(fresh, a), dropdown([(NONE, NONE), *fresh], b)

    tab.select(lists, [checkpoint, first, second], [checkpoint, first, second])
    return tab


def _search_tab(logs: Path, registry: JobRegistry, timer: gr.Timer) -> gr.Tab:
    default_clips = Path("filelists/test.txt")
    with gr.Tab("Schedule search") as tab:
        with gr.Row():
            with gr.Column():
                checkpoint = gr.Dropdown(catalog.vocoders(logs), value=catalog.DEFAULT_SETTINGS["vocoder"],
                                         label="Vocoder checkpoint")
                with gr.Row():
                    n_iter = gr.Number(6, precision=0, label="Iterations")
                    grid = gr.Number(50, precision=0, label="Grid size (start candidates)")
                    budget = gr.Number(20, precision=0, label="Refinement budget (candidates)")
                clips = gr.Textbox(str(default_clips.resolve()) if default_clips.is_file() else "",
                                   label="Held-out clips (a text file, one audio path per line)")
                with gr.Row():
                    n_clips = gr.Number(2, precision=0, label="Clips scored")
                    seconds = gr.Number(1.0, label="Seconds per clip")
                with gr.Row():
                    start = gr.Button("Start search (resumes the same search)", variant="primary")
                    cancel = gr.Button("Cancel the selected search", variant="stop")
                status = gr.Markdown()
                with gr.Row():
                    name = gr.Textbox("6iters_mine", label="Save the best schedule as", scale=3)
                    save = gr.Button("Save", scale=1)
                saved = gr.Markdown()
                gr.Markdown(f"Saved schedules go to `{catalog.user_schedules_dir(logs).resolve()}`, next to the "
                            "shipped ones in every schedule list; the installed package's schedules folder is "
                            "never written.")
            with gr.Column():
                selected = gr.Dropdown(label="Search", choices=[])
                live = gr.Markdown()
                plot = gr.Image(label="Schedule so far", show_label=False, interactive=False)
                log = gr.Textbox(label="Log (last lines)", lines=4, max_lines=4, interactive=False)
        table = gr.Markdown()

    wire_job_buttons(registry, search_tab.KIND, lambda *args: search_tab.start_search(registry, logs, *args),
                     start, cancel, [checkpoint, n_iter, grid, budget, clips, n_clips, seconds], selected, status,
                     "search")

    def keep(job_id: str | None, filename: str) -> tuple:
        if not job_id:
            raise WaveGradError("no search selected")
        path = search_tab.save_best(logs, registry.get(job_id), filename)
        return (f"Saved `{path}`; it is in the Convert and Vocoder schedule lists.",)

    save.click(guarded(keep, 1), [selected, name], [saved, status])

    drawn: dict[str, tuple[int, str | None]] = {}  # job id -> (candidates when drawn, picture)

    def poll(job_id: str | None) -> tuple:
        jobs = registry.jobs(search_tab.KIND)
        job = next((j for j in jobs if j.id == job_id), jobs[0] if jobs else None)
        if job is None:
            return dropdown([], None), "", None, "", job_table(jobs)
        state = search_tab.search_state(job)
        if drawn.get(job.id, (-1, None))[0] != state.scored:
            path = search_tab.plot_progress(job, Path(job.meta["out"]).with_name("progress.png"))
            drawn[job.id] = (state.scored, str(path) if path else None)
        text = f"**{job.title}**: {job.status}"
        if job.status == "queued":
            text += f"; {registry.queue_note(job)}"
        if state.best_score is not None:
            text += (f"; {state.scored} candidates scored ({state.new} by this run, {state.rate:.2f}/s); "
                     f"best log-mel L1 so far **{state.best_score:.4f}**")
        tail = "\n".join(train_tab.read_tail(job.log, 4096).splitlines()[-4:])
        return dropdown(job_choices(jobs), job.id), text, drawn[job.id][1], tail, job_table(jobs)

    timer.tick(poll, selected, [selected, live, plot, log, table], show_progress="hidden")
    return tab
