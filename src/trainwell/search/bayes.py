"""trainwell's Bayesian-optimization sampler: a GP surrogate with the lecture's UCB and EI.

Lecture 002 ("HPO: Bayesian Optimization"): start with a few random configurations, fit a
Gaussian-process surrogate that predicts a mean ``mu`` and an uncertainty ``sigma`` for any
configuration, then evaluate the configuration that maximizes an acquisition function:

* UCB: ``c* = argmax_c mu(c) + beta_t * sigma(c)`` with a decaying ``beta_t = beta0 * 0.8^t``,
  ``t = 1, 2, 3 ...`` (explore first, exploit later);
* EI: ``EI(c) = (mu - f(c+) - delta) Phi(Z) + sigma phi(Z)``, ``Z = (mu - f(c+) - delta) / sigma``.

The surrogate (Matern-5/2 ARD kernel, hyperparameters by maximum a posteriori), the search-space
normalization and the acquisition optimizer (Sobol candidates, then batched L-BFGS-B) are
Optuna's own, reached through :mod:`trainwell.search.optuna_internals`, so this sampler works with
Optuna's storages, pruners and dashboard like any other. Everything is written for maximization
of the standardized, sign-flipped objective: a minimized metric is negated first.

The default ``acquisition="auto"`` is a portfolio chosen on the benchmark
(``benchmarks/tuning.py``, Branin and Hartmann-6 at 20 and 50 trials): EI on odd Bayesian steps,
UCB with ``beta_t = max(2 * 0.8^t, 0.5)`` on even ones, so the search neither stops exploring
(the lecture's pure schedule has beta ~0.03 by step 15 and only exploits) nor wastes late
trials; 4 random startup trials up to 8 dimensions and a tight L-BFGS-B tolerance that
polishes late suggestions. The
GP of the portfolio is fitted to Yeo-Johnson-warped values (``warp``): most objectives have a
heavy tail of bad configurations, which standardized values let dominate the fit; on the broad
suite (``benchmarks/tuning.py --suite``) this cut the median regret several-fold on Branin,
Rosenbrock and six-hump camel. Its second change made the portfolio search each step in a
trust region (TuRBO's, Eriksson et al. 2019) around the best trial: the whole-space search
spent early steps on the box's corners (Rosenbrock's are a million times worse than its
valley) and left Hartmann-6 in a local minimum in 4 of 10 seeds. It also fits a noise level, as
GPSampler does (level on the suite; it keeps the old benchmark's cells at or below their
medians), and past 30 trials refits the kernel every 3 steps (a third of the step's time).
Its last change made the warp a choice past 30 trials: at each fit the GP is fitted to the
warped and to the plain standardized values, and the one under which the observed values are
more likely (the marginal likelihood times the transform's Jacobian) is kept until the next
fit (without the warp, the suite's noisy Hartmann-6 and Levy-8 had lower regret, its Branin
higher). The lecture's ``"ucb"`` and ``"ei"`` keep standardized values, the whole space, a
noise-free GP and a fit at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainwell.errors import ConfigError
from trainwell.search.config import ACQUISITIONS
from trainwell.search.optuna_internals import GaussianProcess

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study


def ucb_beta(t: int, beta0: float = 1.0, decay: float = 0.8, beta_min: float = 0.0) -> float:
    """The UCB balance factor at Bayesian step ``t`` (1-based): ``max(beta0 * decay^t, beta_min)``.

    Lecture 002: ``beta = 0.8^t``, so ``t = 1, 2, 3`` gives 0.8, 0.64, 0.512.

    Example:
        >>> [round(ucb_beta(t), 3) for t in (1, 2, 3)]
        [0.8, 0.64, 0.512]
    """
    return max(beta0 * decay**t, beta_min)


def expected_improvement(
    mu: np.ndarray, sigma: np.ndarray, best: float, delta: float = 0.0
) -> np.ndarray:
    """Lecture 002's EI for maximization: ``(mu - best - delta) Phi(Z) + sigma phi(Z)``."""
    from scipy.stats import norm

    mu = np.asarray(mu, dtype=float)
    sigma = np.maximum(np.asarray(sigma, dtype=float), 1e-300)
    imp = mu - best - delta
    z = imp / sigma
    return imp * norm.cdf(z) + sigma * norm.pdf(z)


def yeo_johnson(x: np.ndarray, lmbda: float) -> np.ndarray:
    """The Yeo-Johnson power transform of ``x`` with exponent ``lmbda`` (monotone in ``x``)."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    pos = x >= 0
    if abs(lmbda) < 1e-8:
        out[pos] = np.log1p(x[pos])
    else:
        out[pos] = np.expm1(lmbda * np.log1p(x[pos])) / lmbda
    if abs(lmbda - 2) < 1e-8:
        out[~pos] = -np.log1p(-x[~pos])
    else:
        out[~pos] = -np.expm1((2 - lmbda) * np.log1p(-x[~pos])) / (2 - lmbda)
    return out


def yeo_johnson_lambda(x: np.ndarray) -> float:
    """The maximum-likelihood exponent of :func:`yeo_johnson` for ``x`` (a Gaussian after the
    transform), by Brent's method from the bracket (-2, 2), as scikit-learn's PowerTransformer
    finds it, without its per-call overhead (about 20 ms, 25 times the search itself)."""
    from scipy import optimize

    x = np.asarray(x, dtype=float)
    jacobian = float(np.sum(np.sign(x) * np.log1p(np.abs(x))))

    def neg_log_likelihood(lmbda: float) -> float:
        var = float(yeo_johnson(x, lmbda).var())
        if not np.isfinite(var) or var <= 0:
            return np.inf
        return 0.5 * len(x) * np.log(var) - (lmbda - 1) * jacobian

    with np.errstate(over="ignore", invalid="ignore"):
        return float(optimize.brent(neg_log_likelihood, brack=(-2.0, 2.0)))


def _warp(raw: np.ndarray) -> np.ndarray:
    """Yeo-Johnson power transform of the (to be maximized) values, standardized."""
    return warp_with_jacobian(raw)[0]


def standardize_with_jacobian(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """The values standardized (the plain GP's), and the log of that map's Jacobian
    determinant, as :func:`warp_with_jacobian` gives the warp's."""
    scale = max(float(raw.std()), 1e-12)
    return (raw - raw.mean()) / scale, -len(raw) * np.log(scale)


def warp_with_jacobian(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`_warp`'s values and the log of its Jacobian's determinant at ``raw`` (the
    standardizations' means and scales and the exponent taken as fixed, as they are for the
    fit): the log-density of ``raw`` is that of the warped values plus this term, which makes
    a GP's marginal likelihood of warped values comparable to that of plain ones."""
    n = len(raw)
    sz = float(raw.std())
    if sz < 1e-12:
        return np.zeros_like(raw), 0.0
    z = (raw.mean() - raw) / sz  # the values to be minimized, standardized
    with np.errstate(over="ignore", invalid="ignore"):
        lmbda = yeo_johnson_lambda(z)
        t = yeo_johnson(z, lmbda)
    st = float(t.std()) if np.isfinite(t).all() else 0.0
    if st < 1e-12:
        return -z, -n * np.log(sz)
    # d yeo_johnson / dz: (1 + z)^(lambda - 1) for z >= 0, (1 - z)^(1 - lambda) below
    log_slope = np.where(z >= 0, lmbda - 1, 1 - lmbda) * np.log1p(np.abs(z))
    return -(t - t.mean()) / st, float(log_slope.sum() - n * np.log(sz) - n * np.log(st))


class BayesSampler(BaseSampler):
    """GP-based Bayesian optimization with UCB (decaying beta), EI, or the default portfolio.

    Args:
        acquisition: ``"ucb"`` (lecture 002 exactly: ``beta0 * decay^t``), ``"ei"``, or
            ``"auto"``, the portfolio that alternates EI and floored UCB.
        beta0: UCB's beta before decay (the lecture's ``beta = 0.8^t`` is ``beta0 = 1``).
        decay: UCB's per-step decay factor (0.8 in the lecture).
        beta_min: floor on beta (0 for ``"ucb"`` as in the lecture; used by ``"auto"``).
        delta: EI's margin ``delta``, in the metric's units (0 by default).
        n_startup_trials: random trials before the surrogate is used; default
            ``max(4, (dim + 1) // 2)`` capped at 10: 4 up to 8 parameters.
        deterministic: fit the GP with only a 1e-6 jitter as noise (a config gives the same
            value twice); False fits a noise level too, which also smooths a jagged objective;
            default: False for ``"auto"``, True for the lecture's ``"ucb"`` and ``"ei"``.
        n_candidates: Sobol candidates scored before the local L-BFGS-B refinement.
        n_local_search: starting points of the local refinement.
        warp: fit the GP to Yeo-Johnson-transformed values (objectives with a heavy tail of
            bad values, as most are far from their optimum): True always, False never; the
            default (None) is off for the lecture's ``"ucb"`` and ``"ei"`` and, for ``"auto"``,
            on for the first 30 trials, then chosen at each fit of the kernel: the GP is fitted
            to both the warped and the plain values and the likelier one is kept
            (:meth:`choose_warp`).
        tol: tolerance of the acquisition's L-BFGS-B refinement (its gradient tolerance is the
            square root); the default polishes late trials finer than Optuna's 1e-4.
        minimum_noise: noise variance floor of the GP (Optuna's default 1e-6).
        trust_region: search each Bayesian step inside TuRBO's trust region (Eriksson et al.
            2019) around the best trial instead of the whole space: a box whose side follows
            the kernel's length scales, doubled after 3 improvements in a row, halved after
            ``max(4, dim)`` steps without one, reset once below 0.5^7 (see
            :func:`trust_region_length`); default: on for ``"auto"``, off for ``"ucb"`` and
            ``"ei"``.
        slices: beside the optimum of the acquisition in the trust region, score this many
            moves per boxed coordinate that change only that coordinate of the best trial,
            anywhere in its range (:func:`one_coordinate_moves`), and take the best of them
            when it scores higher; with 3 or more boxed coordinates and no trial pending (a
            study's other workers); 0: none; default: 16 with the trust region, else 0.
        refit_every: past 30 finished trials, fit the kernel's hyperparameters again only once
            this many more trials have finished since this sampler's last fit (between fits
            the GP is conditioned on the new trials with the last fit's hyperparameters): a
            third of the step's time; default 3 for ``"auto"``, 1 for ``"ucb"`` and ``"ei"``.
        seed: random seed.

    Example:
        >>> import optuna
        >>> sampler = BayesSampler(acquisition="ei", seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=12)
        >>> abs(study.best_params["x"] - 1) < 0.1
        True
    """

    def __init__(
        self,
        *,
        acquisition: str = "auto",
        beta0: float | None = None,
        decay: float = 0.8,
        beta_min: float | None = None,
        delta: float = 0.0,
        n_startup_trials: int | None = None,
        deterministic: bool | None = None,
        n_candidates: int = 1024,
        n_local_search: int = 6,
        warp: bool | None = None,
        tol: float = 1e-8,
        minimum_noise: float | None = None,
        trust_region: bool | None = None,
        refit_every: int | None = None,
        slices: int | None = None,
        seed: int | None = None,
    ) -> None:
        if acquisition not in ACQUISITIONS:
            raise ConfigError(
                f"tune.bayes.acquisition must be one of {', '.join(ACQUISITIONS)}; "
                f"got {acquisition!r}"
            )
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"tune.bayes.decay must be in (0, 1]; got {decay!r}")
        if beta0 is not None and beta0 < 0:
            raise ConfigError(f"tune.bayes.beta0 must be >= 0; got {beta0!r}")
        if n_startup_trials is not None and n_startup_trials < 1:
            raise ConfigError(f"tune.bayes.n_startup_trials must be >= 1; got {n_startup_trials!r}")
        self.acquisition = acquisition
        self.beta0 = (1.0 if acquisition == "ucb" else 2.0) if beta0 is None else float(beta0)
        self.decay = float(decay)
        self.beta_min = (
            (0.0 if acquisition == "ucb" else 0.5) if beta_min is None else float(beta_min)
        )
        self.delta = float(delta)
        self.n_startup_trials = n_startup_trials
        self.n_candidates = int(n_candidates)
        self.n_local_search = int(n_local_search)
        # the suite's first kept change: the portfolio fits warped values; the lecture's
        # acquisitions, by name, the standardized ones (EI's delta stays in the metric's units)
        self.warp = (acquisition == "auto") if warp is None else bool(warp)
        # the suite's last change: past WARP_CHOICE_FROM trials the portfolio chooses
        self.choose = acquisition == "auto" and warp is None
        self.tol = float(tol)
        self.minimum_noise = minimum_noise
        # the suite's second change: a noise level and a trust region for the portfolio;
        # the lecture's acquisitions by name keep the whole space and a noise-free GP
        self.deterministic = (acquisition != "auto") if deterministic is None else deterministic
        self.trust_region = (acquisition == "auto") if trust_region is None else trust_region
        auto = acquisition == "auto"
        self.refit_every = (3 if auto else 1) if refit_every is None else int(refit_every)
        if self.refit_every < 1:
            raise ConfigError(f"refit_every must be >= 1; got {refit_every!r}")
        # the suite's fifth change: moves of one coordinate beyond the trust region
        self.slices = (SLICES if self.trust_region else 0) if slices is None else int(slices)
        if self.slices < 0:
            raise ConfigError(f"tune.bayes.slices must be >= 0; got {slices!r}")
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace()
        self._model: GaussianProcess | None = None  # the last fit, to warm-start the next
        # the last fit to warped (True) and plain (False) values, when the warp is chosen
        self._fits: dict[bool, GaussianProcess] = {}
        self._warped = self.warp  # the transform the last fit chose
        self.last_warped: bool | None = None  # whether the last Bayesian step warped, for tests
        # finished trials at this sampler's last fit of the kernel's hyperparameters (each
        # worker keeps its own sampler, so the schedule counts its own fits)
        self._fitted_at = -1
        self.last_acquisition: tuple[str, float] | None = None  # (kind, beta or delta), for tests
        self.last_acqf: Any = None  # the acquisition function of the last Bayesian step
        # the trust region (normalized low, high) the last Bayesian step searched, or None
        self.last_box: tuple[np.ndarray, np.ndarray] | None = None
        # the coordinate the last step moved beyond the box (one_coordinate_moves), or None
        self.last_move: int | None = None

    # ------------------------------------------------------------------ Optuna's sampler API

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def reseed(self, seed: int) -> None:
        """Draw from the stream of ``seed`` from now on (startup points and the acquisition's
        candidates); the fitted model is kept to warm-start the next fit. A study's workers
        reseed the sampler for each trial from the study seed and the trial number, so no two
        trials, workers or resumptions share a stream."""
        self._rng.seed(seed)
        self._random = RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {n: d for n, d in self._space.calculate(study).items() if not d.single()}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # startup trials, and parameters outside the shared space (conditional ones), are random
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def startup_trials(self, dim: int) -> int:
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return min(10, max(4, (dim + 1) // 2))

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if len(study.directions) != 1:
            raise ConfigError("the bayes sampler optimizes one metric; got a multi-objective study")
        trials = study.get_trials(
            deepcopy=False,
            states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING),
        )
        done = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and search_space.keys() <= t.params.keys()
        ]
        # pending: trials running, and trials queued with their configuration (a trial put
        # back in the queue by an interrupt, a grid point): each will be evaluated soon
        running = [
            t
            for t in trials
            if t.state != TrialState.COMPLETE
            and t.number != trial.number
            and _fits(_pending_params(t), search_space)
        ]
        if len(done) < self.startup_trials(len(search_space)):
            return {}
        import torch

        if torch.get_default_device().type == "cpu":
            # the usual case: no device context, whose dispatch on every torch call costs
            # about a third of the step
            return self._suggest(study, done, running, search_space)
        with torch.device("cpu"):  # a caller's default device (a GPU) would get the tensors
            return self._suggest(study, done, running, search_space)

    # ------------------------------------------------------------------ the Bayesian step

    def step_acquisition(self, t: int) -> tuple[str, float]:
        """The acquisition used at Bayesian step ``t`` (1-based) and its beta (UCB) or delta
        (EI)."""
        if self.acquisition == "ucb":
            return "ucb", ucb_beta(t, self.beta0, self.decay, self.beta_min)
        if self.acquisition == "ei":
            return "ei", self.delta
        # auto: EI on odd steps, floored decaying UCB on even ones
        if t % 2 == 1:
            return "ei", self.delta
        return "ucb", ucb_beta(t, self.beta0, self.decay, self.beta_min)

    def _suggest(
        self,
        study: Study,
        done: list[FrozenTrial],
        running: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        model = GaussianProcess(relax_ints(search_space))
        X = model.normalize(done)
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        raw = sign * np.array([t.value for t in done], dtype=float)
        raw = np.where(np.isfinite(raw), raw, np.nan)
        worst = np.nanmin(raw) if np.isfinite(raw).any() else 0.0
        raw = np.where(np.isnan(raw), worst, raw)
        scale = max(raw.std(), 1e-12)
        refit = (
            len(done) <= REFIT_ALWAYS
            or self._model is None
            or len(done) - self._fitted_at >= self.refit_every
        )
        if self.choose and refit and len(done) >= WARP_CHOICE_FROM:
            model, y, self._warped = self.choose_warp(search_space, X, raw)
            fitted = True
        else:
            # between fits the transform the last fit chose (the hyperparameters are its)
            warped = self._warped if self.choose and len(done) > WARP_CHOICE_FROM else self.warp
            y = _warp(raw) if warped else standardize_with_jacobian(raw)[0]
            fitted = model.fit(
                X,
                y,
                minimum_noise=self.minimum_noise,
                deterministic=self.deterministic,
                previous=self._model,
                refit=refit,
            )
            self._warped = warped
        if fitted:
            self._fitted_at = len(done)
        self._model = model
        self.last_warped = self._warped
        best = float(y.max())
        if running:
            # kriging believer: pending trials count as observed at their predicted mean, so
            # concurrent workers do not all pick the same point; a believed value above the
            # best observed one is the incumbent EI must beat (else EI stays positive at a
            # pending point, where sigma is 0, and the next worker picks it again)
            believed = model.add_pending(
                model.normalize(running, [_pending_params(t) for t in running])
            )
            best = max(best, float(believed.max()))
        # a pending trial is a step taken: concurrent workers take the portfolio's turns
        t = len(done) + len(running) - self.startup_trials(model.dim) + 1
        kind, value = self.step_acquisition(t)
        self.last_acquisition = (kind, value)
        # the GP models standardized values: mu + beta * sigma keeps its argmax under that affine
        # map, and EI's margin delta (in the metric's units) is divided by the same scale
        acqf = (
            model.ucb(value)
            if kind == "ucb"
            else model.log_ei(best, value if self._warped else value / scale)
        )
        self.last_acqf = acqf
        box = None
        if self.trust_region:
            box = trust_region_box(
                X,
                raw,
                model.length_scales,
                self.startup_trials(model.dim),
                boxed=model.continuous,
            )
        self.last_box = box
        incumbent = int(np.argmax(y))
        also = None
        # not while trials are pending (several workers): a move is a jump whose outcome the
        # other workers would not know before they jump too (2 simulated workers: 1.25x one
        # worker's regret at equal trials with moves on every step, 1.05x without)
        if (box is not None and self.slices and not running
                and model.continuous.sum() >= SLICES_FROM_DIM):
            also = one_coordinate_moves(X[incumbent], model.continuous, self.slices, self._rng)
        params = model.maximize(
            acqf,
            also=also,
            box=box,
            start=X[incumbent, None],
            n_candidates=self.n_candidates,
            n_local_search=self.n_local_search,
            tol=self.tol,
            rng=self._rng,
        )
        taken = model.taken_from_also
        # the coordinate a one-coordinate move changed (index in the GP's space), or None
        self.last_move = (None if taken is None else
                          int(np.flatnonzero(model.continuous)[taken // self.slices]))
        return round_ints(params, search_space)

    def choose_warp(
        self, search_space: dict[str, BaseDistribution], X: np.ndarray, raw: np.ndarray
    ) -> tuple[GaussianProcess, np.ndarray, bool]:
        """The GP fitted to the warped values and the one fitted to the plain standardized
        values, each warm-started from its own last fit; the one under which ``raw`` is more
        likely (the log marginal likelihood plus the log-Jacobian of its transform) is
        returned, with the values it was fitted to and whether they are the warped ones."""
        candidates = []
        for warped, (y, log_jacobian) in (
            (True, warp_with_jacobian(raw)),
            (False, standardize_with_jacobian(raw)),
        ):
            model = GaussianProcess(relax_ints(search_space))
            model.fit(
                X,
                y,
                minimum_noise=self.minimum_noise,
                deterministic=self.deterministic,
                previous=self._fits.get(warped, self._model),
            )
            self._fits[warped] = model
            candidates.append((model.log_marginal_likelihood() + log_jacobian, warped, model, y))
        _, warped, model, y = max(candidates, key=lambda c: c[0])
        return model, y, warped

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._random.before_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._random.after_trial(study, trial, state, values)


def one_coordinate_moves(
    incumbent: np.ndarray, boxed: np.ndarray, per_coordinate: int, rng: np.random.RandomState
) -> np.ndarray:
    """Candidates beyond the trust region: the incumbent (normalized) with one boxed coordinate
    drawn uniformly over its whole range, ``per_coordinate`` draws per coordinate.

    A trust region shrinks around the best trial; when a few of its coordinates sit in a
    distant local minimum (Levy-8: most coordinates at the optimum, two or three in wells a
    third of the range away), no move inside the box reaches the basin the GP sees. Scored by
    the same acquisition as the box's optimum, such a move is taken only when it scores higher.
    """
    dims = np.flatnonzero(np.asarray(boxed, dtype=bool))
    moves = np.repeat(np.asarray(incumbent, dtype=float)[None], len(dims) * per_coordinate, axis=0)
    for j, d in enumerate(dims):
        moves[j * per_coordinate:(j + 1) * per_coordinate, d] = rng.uniform(size=per_coordinate)
    return moves


def trust_region_length(
    values: np.ndarray,
    n_startup: int,
    *,
    init: float = 0.8,
    min_length: float = 0.5**7,
    max_length: float = 1.6,
    success_tol: int = 3,
    failure_tol: int | None = None,
    dim: int = 1,
) -> float:
    """TuRBO-1's trust-region side length after the trials ``values`` (in order, maximized).

    Eriksson et al. 2019: the region starts at ``init`` (of the unit cube), doubles after
    ``success_tol`` improvements in a row, halves after ``failure_tol`` (``max(4, dim)``) trials
    in a row without one (an improvement beats the best by 1e-3 of its magnitude), and starts
    over at ``init`` once it falls below ``min_length``. Computed from the history alone, so
    every worker and a resumed study find the same side (the box's shape follows each
    sampler's own kernel fit).
    """
    failure_tol = max(4, dim) if failure_tol is None else failure_tol
    length = init
    best = float(np.max(values[:n_startup])) if n_startup else -np.inf
    succ = fail = 0
    for v in values[n_startup:]:
        if v > best + 1e-3 * abs(best):
            succ, fail = succ + 1, 0
        else:
            succ, fail = 0, fail + 1
        best = max(best, float(v))
        if succ >= success_tol:
            length, succ = min(2 * length, max_length), 0
        elif fail >= failure_tol:
            length, fail = length / 2, 0
            if length < min_length:
                length = init
    return length


def trust_region_box(
    X: np.ndarray,
    raw: np.ndarray,
    length_scales: np.ndarray,
    n_startup: int,
    boxed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """TuRBO's box around the best point: side ``L * l_i / geomean(l)`` per boxed normalized
    parameter (``boxed``: a mask, default all; the geometric mean over those only, so the
    box's volume is ``L^d``), clipped to the unit cube; the others get the whole [0, 1]."""
    dim = X.shape[1]
    boxed = np.ones(dim, dtype=bool) if boxed is None else np.asarray(boxed, dtype=bool)
    low, high = np.zeros(dim), np.ones(dim)
    if not boxed.any():
        return low, high
    length = trust_region_length(raw, n_startup, dim=dim)
    ls = np.asarray(length_scales, dtype=float)[boxed]
    w = ls / np.exp(np.mean(np.log(ls))) * length
    center = X[int(np.argmax(raw))][boxed]
    low[boxed] = np.clip(center - w / 2, 0.0, 1.0)
    high[boxed] = np.clip(center + w / 2, 0.0, 1.0)
    return low, high


def _pending_params(trial: FrozenTrial) -> dict[str, Any]:
    """A running trial's parameters; a queued one's, or its fixed parameters."""
    fixed = trial.system_attrs.get("fixed_params") if trial.state == TrialState.WAITING else None
    return {**(fixed if isinstance(fixed, dict) else {}), **trial.params}


def _fits(params: dict[str, Any], search_space: dict[str, BaseDistribution]) -> bool:
    """Whether ``params`` holds a value for every parameter of the space, each within it."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    for name, dist in search_space.items():
        if name not in params:
            return False
        try:
            if isinstance(dist, CategoricalDistribution):
                dist.to_internal_repr(params[name])
            elif isinstance(dist, (FloatDistribution, IntDistribution)):
                if not dist.low <= float(params[name]) <= dist.high:
                    return False
        except (TypeError, ValueError):
            return False
    return True


#: Up to this many finished trials the kernel's hyperparameters are fitted at every step, then
#: each time ``refit_every`` more trials have finished (between fits the GP conditions on the
#: new trials with the last fit's hyperparameters, which move little once there are this many)
REFIT_ALWAYS = 30

#: From this many finished trials on, the default portfolio chooses whether to warp at each fit
#: (before, the likelihoods of a few trials decide by chance, and the warp is kept)
WARP_CHOICE_FROM = 30
#: one-coordinate moves per boxed coordinate scored beside the trust region's optimum
SLICES = 16
#: boxed coordinates from which they are: in 2 dimensions the box's shrinking is not what
#: stops a search (Branin and the six-hump camel reach 1e-5 and 1e-6 by 50 trials), and the
#: moves measured there spent steps the polish needs (Branin at 50 trials: 0.35x against 0.09x)
SLICES_FROM_DIM = 3

#: An int parameter with more values than this is searched as a continuous one, then rounded.
MAX_DISCRETE_INT = 16


def relax_ints(search_space: dict[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    """Int parameters with many values as float ones, for the GP and the acquisition search.

    Optuna's mixed optimizer searches a discrete parameter by alternating line searches, several
    times slower than gradient steps; a width in [16, 256] needs no such care: the suggestion is
    rounded to the nearest valid int (:func:`round_ints`).
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    out: dict[str, BaseDistribution] = {}
    for name, dist in search_space.items():
        if (
            isinstance(dist, IntDistribution)
            and (dist.high - dist.low) // dist.step + 1 > MAX_DISCRETE_INT
        ):
            out[name] = FloatDistribution(dist.low, dist.high, log=dist.log)
        else:
            out[name] = dist
    return out


def round_ints(
    params: dict[str, Any], search_space: dict[str, BaseDistribution]
) -> dict[str, Any]:
    """Each relaxed int parameter rounded to its nearest valid value (within bounds, on its
    step)."""
    from optuna.distributions import IntDistribution

    out = dict(params)
    for name, dist in search_space.items():
        if isinstance(dist, IntDistribution) and not isinstance(out[name], int):
            k = round((float(out[name]) - dist.low) / dist.step)
            out[name] = int(min(max(dist.low + k * dist.step, dist.low), dist.high))
    return out


__all__ = [
    "ACQUISITIONS",
    "MAX_DISCRETE_INT",
    "BayesSampler",
    "expected_improvement",
    "relax_ints",
    "round_ints",
    "ucb_beta",
]
