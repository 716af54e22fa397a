"""Training with Stable-Baselines3: HER for goal tasks, demonstrations, pixels, run folders, resume.

A run folder holds everything about one run and is never overwritten by another:
``config.yaml`` (the resolved settings), ``command.txt`` (the ``surgisim train`` command of each
invocation, see ``train_command``), ``checkpoint.json`` and
``checkpoints/`` (the latest checkpoint: model, replay buffer and observation normalisation
statistics, saved as one set; see ``surgisim.agents.checkpoint``), ``tensorboard/`` (training
curves), ``eval.csv`` and ``success.png`` (success rate over steps), and ``final_policy.mp4`` (the
endoscope view of the trained policy). ``resume`` continues a run from its last checkpoint with
its step count, replay buffer and learning-rate schedule, or from step 0 if it was stopped before
its first checkpoint.

Pixel policies: with an image ``obs_mode`` the policy sees the endoscope images only (no state,
no goal: the task's state holds privileged positions), through SB3's NatureCNN per image.

Torch uses one thread per process on the CPU unless told otherwise (``torch_threads``): on a
2-core machine with one other busy process, two threads made a SAC+HER run 2.5 times slower
(README, Training). Several envs (``n_envs``) step in worker processes, each with one thread.
``device`` puts the learner on ``cpu``, ``cuda`` or, with ``auto``, CUDA where there is one.

A run ends with an evaluation at its last step (in ``eval.csv``, ``success.png`` and TensorBoard,
whose ``rollout/ep_rew_mean`` and ``ep_len_mean`` come from a ``Monitor`` on the training env).
Ctrl-C (SIGINT) stops training at the end of the rollout in progress (a step for SAC, TD3 and
TQC; ``n_steps`` for PPO), saves a checkpoint there and raises ``KeyboardInterrupt`` with the
resume command in its message; a second Ctrl-C stops at once.

Observations are normalised with running statistics (``VecNormalize``, on by default): poses in
metres differ by millimetres, too little for a network to see without it (NeedleReach with HER
and SAC: success 0.0 at 8k steps unnormalised, 1.0 at 4k normalised). The replay buffer keeps
raw observations, so HER's relabelled rewards are computed on real positions.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from surgisim.agents import checkpoint, imitation
from surgisim.agents.config import load_config, validate
from surgisim.agents.curves import plot_success, read_evaluations
from surgisim.agents.evaluate import evaluate
from surgisim.agents.extractors import KeypointExtractor
from surgisim.agents.models import (
    ALGORITHMS,
    ModelPolicy,
    check_env_kwargs,
    env_kwargs,
    load_model,
    loaded,
    make_env,
    read_settings,
)
from surgisim.envs import task_name
from surgisim.envs.files import atomic_write, check_writable, free_path, video_writer

# Hyperparameters passed to the algorithm's constructor as they are.
MODEL_KEYS = ("learning_rate", "buffer_size", "batch_size", "gamma", "tau", "learning_starts", "train_freq",
              "gradient_steps", "n_steps", "n_epochs", "gae_lambda", "clip_range", "ent_coef", "vf_coef",
              "max_grad_norm")  # fmt: skip
EVAL_SEED = 10_000  # evaluation episodes use seeds from here, apart from training's
DEVICES = ("auto", "cpu", "cuda")
EVAL_COLUMNS = ("timesteps", "success_rate", "cost_rate", "mean_return", "mean_episode_length", "wall_s")


def _vec_env(settings: dict[str, Any]) -> VecEnv:
    n_envs = settings["hyperparameters"].get("n_envs", 1)
    if n_envs == 1:
        return DummyVecEnv([functools.partial(make_env, settings, monitor=True)])
    return SubprocVecEnv([functools.partial(make_env, settings, True, monitor=True) for _ in range(n_envs)])


def _device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: use {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this torch sees no CUDA GPU (a CPU build, or no driver); use cpu or auto")
    return device


class Interrupt:
    """Ctrl-C during training: the first SIGINT asks for a stop at the end of the rollout in
    progress; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():  # a Ray trial's thread: Ray's to stop
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("surgisim: stopping at the end of this rollout (Ctrl-C again to stop now)", file=sys.stderr)

    def __exit__(self, *_: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def new_run_dir(env_id: str, algo: str, seed: int, root: Path = Path("runs")) -> Path:
    """``runs/<Task>-<algo>-seed<S>``, or with ``-1``, ``-2``... if taken."""
    return free_path(root / f"{task_name(env_id)}-{algo}-seed{seed}")


class RunCallback(BaseCallback):
    """Evaluates into eval.csv and checkpoints the model and replay buffer as training goes."""

    def __init__(self, run_dir: Path, settings: dict[str, Any], started: float, interrupt: Interrupt) -> None:
        super().__init__()
        self.run_dir, self.settings, self.hyper = run_dir, settings, settings["hyperparameters"]
        self.started = started  # wall_s in eval.csv counts from here (this invocation, demos included)
        self.next_eval = self.next_checkpoint = 0
        self.interrupt, self.stopped_at = interrupt, None  # the step count of the checkpoint a Ctrl-C saved

    def _on_training_start(self) -> None:
        done = self.model.num_timesteps
        if done == 0:  # where learning starts from: untrained, or cloned from demonstrations
            self.evaluate()
        self.next_eval = done + self.hyper["eval_freq"]
        self.next_checkpoint = done + self.hyper["checkpoint_freq"]

    def _on_step(self) -> bool:
        if self.stopped_at is not None:  # the Ctrl-C checkpoint is saved: this step is not in it
            return False
        if self.num_timesteps >= self.next_eval:
            self.evaluate()
            self.next_eval += self.hyper["eval_freq"]
        return True

    def _on_rollout_end(self) -> None:
        # Here, not in _on_step: SB3 stores a step's transition after _on_step, so a checkpoint
        # taken there would count a step whose transition it lacks.
        if self.num_timesteps >= self.next_checkpoint or self.interrupt.requested:
            checkpoint.save(self.model, self.run_dir, self.settings)
            self.next_checkpoint = self.num_timesteps + self.hyper["checkpoint_freq"]
            if self.interrupt.requested:
                self.stopped_at = self.num_timesteps

    def evaluate(self) -> None:
        policy = ModelPolicy(self.model, self.model.get_vec_normalize_env())
        kwargs = env_kwargs(self.settings)
        metrics = evaluate(self.settings["env_id"], policy, self.hyper["eval_episodes"], EVAL_SEED, kwargs)
        path = self.run_dir / "eval.csv"
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(EVAL_COLUMNS)
            measured = [metrics[key] for key in EVAL_COLUMNS[1:-1]]
            writer.writerow([self.num_timesteps, *measured, round(time.perf_counter() - self.started, 1)])
        plot_success(path, self.run_dir / "success.png", f"{self.settings['env_id']} ({self.settings['algo']})")
        self.logger.record("eval/success_rate", metrics["success_rate"])
        self.logger.record("eval/mean_episode_length", metrics["mean_episode_length"])


def _last_evaluated(path: Path) -> int | None:
    rows = read_evaluations(path)
    return int(rows[-1][0]) if len(rows) > 1 else None


def build_model(settings: dict[str, Any], env: VecEnv, run_dir: Path, device: str = "cpu") -> BaseAlgorithm:
    """A new model of the run's algorithm and hyperparameters on ``env`` (TensorBoard logs in the run)."""
    hyper = settings["hyperparameters"]
    kwargs: dict[str, Any] = {key: hyper[key] for key in MODEL_KEYS if key in hyper}
    policy_keys = ("net_arch", "log_std_init")
    kwargs["policy_kwargs"] = {key: hyper[key] for key in policy_keys if key in hyper}
    if hyper.get("extractor") == "keypoints":
        kwargs["policy_kwargs"]["features_extractor_class"] = KeypointExtractor
    kwargs["policy_kwargs"] = kwargs["policy_kwargs"] or None
    if hyper.get("her", False):
        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = {
            key: hyper[key] for key in ("n_sampled_goal", "goal_selection_strategy") if key in hyper
        }
    cls = ALGORITHMS[settings["algo"]]
    log = str(run_dir / "tensorboard")
    return cls("MultiInputPolicy", env, seed=settings["seed"], device=device, tensorboard_log=log, **kwargs)


def train(
    env_id: str,
    algo: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    obs_mode: str | None = None,
    run_dir: Path | None = None,
    resume: Path | None = None,
    her: bool | None = None,
    progress_bar: bool = True,
    config_file: Path | None = None,
    demos: Path | None = None,
    n_envs: int | None = None,
    device: str = "cpu",
    torch_threads: int = 1,
    extra_env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Train a new run (``algo`` default sac, ``seed`` 0, ``obs_mode`` state, ``extra_env_kwargs``
    such as ``control`` or ``action_frame``) or, with ``resume``, continue one with its own
    settings (any of those arguments given must agree with them); returns the run folder.
    ``device`` and ``torch_threads`` say where it runs, not what it learns: a resume may change them."""
    started = time.perf_counter()
    device = _device(device)
    if torch_threads < 1:
        raise ValueError(f"torch threads {torch_threads}: at least 1")
    torch.set_num_threads(torch_threads)
    if resume is not None:
        run_dir = Path(resume)
        settings = read_settings(run_dir / "config.yaml")
        checkpoint.check_contained(run_dir)
        read_evaluations(run_dir / "eval.csv")  # a damaged one is named now, before anything changes
        _check_resume(run_dir, settings, env_id=env_id, algo=algo, seed=seed, obs_mode=obs_mode, her=her,
                      demos=demos, n_envs=n_envs, config_file=config_file,
                      env_kwargs=extra_env_kwargs or None)  # fmt: skip
    else:
        settings = _new_settings(env_id, algo, seed, obs_mode, her, config_file, demos, n_envs, extra_env_kwargs)
        run_dir = _new_run_dir(run_dir, settings)
    hyper = _complete(settings, steps)
    with contextlib.ExitStack() as stack:
        latest = _latest(stack, run_dir, settings) if resume is not None else None
        model, demonstrations = _model(stack, settings, run_dir, latest, device)
        # Written only once everything has loaded: a failed start or resume leaves the run as it was.
        if resume is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(checkpoint.locked(run_dir))
        _open_run(run_dir, settings, latest, train_command(settings, run_dir, resume is not None, steps, config_file,
                                                           her, n_envs))  # fmt: skip
        interrupt = stack.enter_context(Interrupt())
        run = RunCallback(run_dir, settings, started, interrupt)
        callbacks: list[BaseCallback] = [run]
        if demonstrations is not None and hyper.get("bc_weight", 0.0) > 0 and hasattr(model, "replay_buffer"):
            callbacks.append(imitation.DemoRegularizer(demonstrations, hyper["bc_weight"], settings["seed"]))
        remaining = hyper["n_timesteps"] - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=callbacks, reset_num_timesteps=False, progress_bar=progress_bar,
                        tb_log_name=settings["algo"])  # fmt: skip
        if run.stopped_at is not None:
            resume_command = f"surgisim train {task_name(settings['env_id'])} --resume {shlex.quote(str(run_dir))}"
            raise KeyboardInterrupt(f"stopped at step {run.stopped_at} of {hyper['n_timesteps']}, checkpoint saved; "
                                    f"continue with: {resume_command}")  # fmt: skip
        checkpoint.save(model, run_dir, settings)
        if _last_evaluated(run_dir / "eval.csv") != model.num_timesteps:  # the final model, measured
            if run.model is None:  # nothing was left to learn: the callback never started
                run.init_callback(model)
            run.evaluate()
            model.logger.dump(model.num_timesteps)
        record_video(ModelPolicy(model, model.get_vec_normalize_env()), settings, run_dir / "final_policy.mp4")
    return run_dir


def _new_settings(env_id: str, algo: str | None, seed: int | None, obs_mode: str | None, her: bool | None,
                  config_file: Path | None, demos: Path | None, n_envs: int | None,
                  extra_env_kwargs: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """A new run's settings: the defaults, the algorithm's configuration for the task, the overrides."""
    algo, seed, obs_mode = algo or "sac", 0 if seed is None else seed, obs_mode or "state"
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    hyper = load_config(algo, env_id, config_file)
    overrides = {"her": her if her or algo != "ppo" else None, "n_envs": n_envs}  # PPO has no HER to turn off
    hyper.update({key: value for key, value in overrides.items() if value is not None})
    return {"env_id": env_id, "algo": algo, "seed": seed, "obs_mode": obs_mode, "hyperparameters": hyper,
            "demos": str(Path(demos).resolve()) if demos is not None else None,
            "env_kwargs": check_env_kwargs(env_id, extra_env_kwargs or {})}  # fmt: skip


def _new_run_dir(run_dir: Path | None, settings: dict[str, Any]) -> Path:
    """Where a new run goes (checked, not yet created): given, or named after the task, algorithm and seed."""
    default = new_run_dir(settings["env_id"], settings["algo"], settings["seed"])
    run_dir = check_writable(run_dir if run_dir is not None else default, "run folder")
    try:
        str(run_dir).encode()
    except UnicodeEncodeError:
        raise ValueError(f"{run_dir!r}: TensorBoard writes only to paths that are UTF-8 text; rename it") from None
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir} is a file, not a run folder; choose another --run-dir")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume {run_dir} or choose another --run-dir")
    return run_dir


def _complete(settings: dict[str, Any], steps: int | None) -> dict[str, Any]:
    """The run's hyperparameters with the step count and the evaluation defaults, validated."""
    hyper = settings["hyperparameters"]
    if steps is not None:
        hyper["n_timesteps"] = steps
    hyper.setdefault("eval_episodes", 20)
    hyper.setdefault("eval_freq", 2000)
    hyper.setdefault("checkpoint_freq", hyper["eval_freq"])
    validate(hyper, "settings", settings["algo"])
    if hyper.get("her") and settings["obs_mode"] != "state":
        raise ValueError("HER needs the goal in the observation; pixel policies see images only: pass --no-her")
    episode, starts = gym.spec(settings["env_id"]).max_episode_steps, hyper.get("learning_starts", 100)  # SB3's
    if hyper.get("her") and starts < episode:
        raise ValueError(f"learning_starts {starts} is shorter than an episode of {settings['env_id']} "
                         f"({episode} steps): HER samples only from finished episodes")  # fmt: skip
    return hyper


def _latest(stack: contextlib.ExitStack, run_dir: Path, settings: dict[str, Any]) -> checkpoint.Checkpoint | None:
    """A resumed run, locked: its newest complete checkpoint, or None before the first."""
    stack.enter_context(checkpoint.locked(run_dir))
    latest = checkpoint.current(run_dir)
    if latest is not None:
        checkpoint.require(latest, checkpoint.set_files(settings))
    elif (run_dir / checkpoint.MODEL).exists():
        raise ValueError(f"{run_dir}: a run folder of an older surgisim (no {checkpoint.MANIFEST}); it can be "
                         "evaluated and exported, not resumed")  # fmt: skip
    else:
        print(f"{run_dir}: no checkpoint yet; training starts again from step 0", file=sys.stderr)
    return latest


def _model(stack: contextlib.ExitStack, settings: dict[str, Any], run_dir: Path, latest: checkpoint.Checkpoint | None,
           device: str) -> tuple[BaseAlgorithm, imitation.Demonstrations | None]:  # fmt: skip
    """The model on its training envs (closed with ``stack``): loaded from ``latest`` with its
    normalisation and replay buffer, or new (started from the demonstrations, if any)."""
    hyper, demonstrations = settings["hyperparameters"], None
    if settings.get("demos") is not None:
        probe = make_env(settings)
        try:
            demonstrations = imitation.Demonstrations(Path(settings["demos"]), probe)
        finally:
            probe.close()
    env = _vec_env(settings)
    stack.callback(lambda: env.close())
    if checkpoint.normalised(settings):
        if latest is not None:
            stats = latest[checkpoint.NORMALIZATION]
            env = loaded(stats, lambda: VecNormalize.load(str(stats), env))
        else:
            env = checkpoint.normaliser(env, settings)
    if latest is not None:
        model = load_model(latest.folder, env, device)
        model.tensorboard_log = str(run_dir / "tensorboard")
        if checkpoint.REPLAY_BUFFER in latest.files:
            # The episode in progress at the checkpoint is cut there; the new one starts afresh.
            buffer = latest[checkpoint.REPLAY_BUFFER]
            loaded(buffer, lambda: model.load_replay_buffer(buffer, truncate_last_traj=True))
    else:
        model = build_model(settings, env, run_dir, device)
        if demonstrations is not None:
            _start_from_demos(model, demonstrations, hyper, settings["seed"])
    return model, demonstrations


def _open_run(run_dir: Path, settings: dict[str, Any], latest: checkpoint.Checkpoint | None, command: str) -> None:
    """Bring the (locked) run folder to ``latest``: its manifest rebuilt if it was lost, later sets
    and evaluations dropped; then the settings and the command that continues it."""
    if latest is not None and latest.recovered:
        checkpoint.write_manifest(run_dir, latest)
        print(f"{run_dir}: {checkpoint.MANIFEST} was missing; continuing from the complete set at "
              f"{latest.timesteps} steps in {latest.folder}", file=sys.stderr)  # fmt: skip
    checkpoint.clean(run_dir, latest)
    _keep_evaluations_until(run_dir / "eval.csv", latest.timesteps if latest is not None else None)
    checkpoint.write_settings(run_dir / checkpoint.CONFIG, settings)
    with (run_dir / "command.txt").open("a", errors="surrogateescape") as handle:
        handle.write(command + "\n")


def train_command(
    settings: dict[str, Any],
    run_dir: Path,
    resumed: bool,
    steps: int | None = None,
    config_file: Path | None = None,
    her: bool | None = None,
    n_envs: int | None = None,
) -> str:
    """The ``surgisim train`` command that does what this invocation did, however it was called
    (the CLI, Python, a sweep's Ray trial): what ``command.txt`` keeps and a policy card quotes.
    Paths are absolute; where it runs (device, torch threads) is left out."""
    words = ["surgisim", "train", task_name(settings["env_id"])]
    if resumed:
        words += ["--resume", str(Path(run_dir).resolve())]
    else:
        words += ["--algo", settings["algo"], "--seed", str(settings["seed"])]
        if settings["obs_mode"] != "state":
            words += ["--obs-mode", settings["obs_mode"]]
        if her is not None:
            words.append("--her" if her else "--no-her")
        if n_envs is not None:
            words += ["--n-envs", str(n_envs)]
        if config_file is not None:
            words += ["--config", str(Path(config_file).resolve())]
        if settings.get("demos"):
            words += ["--demos", settings["demos"]]
        if settings.get("env_kwargs"):
            words += ["--env-kwargs", *(f"{key}={value}" for key, value in settings["env_kwargs"].items())]
    if steps is not None:
        words += ["--steps", str(steps)]
    if not resumed:
        words += ["--run-dir", str(Path(run_dir).resolve())]
    return shlex.join(words)


def _check_resume(run_dir: Path, settings: dict[str, Any], **asked: Any) -> None:
    """A ``ValueError`` when a resume asks for something other than the run's own settings:
    a run continues as it started."""
    if asked.pop("config_file") is not None:
        raise ValueError(f"{run_dir} resumes with its own settings ({run_dir / 'config.yaml'}); leave out --config")
    hyper = settings["hyperparameters"]
    demos = asked.pop("demos")
    run = {"env_id": settings["env_id"], "algo": settings["algo"], "seed": settings["seed"],
           "obs_mode": settings["obs_mode"], "her": bool(hyper.get("her", False)),
           "n_envs": hyper.get("n_envs", 1), "env_kwargs": settings.get("env_kwargs", {})}  # fmt: skip
    for key, value in asked.items():
        if value is not None and value != run[key]:
            raise ValueError(f"{run_dir} was started with {key} {run[key]!r}, not {value!r}; a run resumes as it "
                             f"started: leave out --{key.replace('_', '-')} or start a new run")  # fmt: skip
    if demos is not None and str(Path(demos).resolve()) != settings.get("demos"):
        raise ValueError(f"{run_dir} was started with demos {settings.get('demos')}; leave out --demos")


def _keep_evaluations_until(path: Path, timesteps: int | None) -> None:
    """Drop the rows of ``eval.csv`` that a resume will measure again: those after the
    checkpoint it continues from (all of them when it starts again from step 0)."""
    rows = read_evaluations(path)
    if not rows:
        return
    kept = [row for row in rows[1:] if timesteps is not None and int(row[0]) <= timesteps]
    if len(kept) == len(rows) - 1:
        return
    if not kept:
        path.unlink()
        return

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            csv.writer(handle).writerows([rows[0], *kept])

    atomic_write(path, write)


def _start_from_demos(model: BaseAlgorithm, demos: imitation.Demonstrations, hyper: dict[str, Any], seed: int) -> None:
    """Normalisation statistics, replay buffer and a behaviour-cloned actor from the demonstrations."""
    imitation.seed_normalizer(model, demos)
    if hasattr(model, "replay_buffer"):
        imitation.fill_replay_buffer(model, demos)
    imitation.behaviour_clone(model, demos, hyper.get("bc_steps", 0), seed)


def record_video(policy: ModelPolicy, settings: dict[str, Any], path: Path, episodes: int = 2) -> None:
    """An endoscope-view video of the policy over a few evaluation episodes."""
    kwargs = {**env_kwargs(settings), "render_mode": "rgb_array", "render_size": 128}
    with video_writer(path, fps=10) as append:
        evaluate(settings["env_id"], policy, episodes, EVAL_SEED, kwargs, on_frame=append)


__all__ = ["train"]
