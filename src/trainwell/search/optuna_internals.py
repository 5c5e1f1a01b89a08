"""Every use of Optuna's private modules, attributes and tables, in one place.

Two parts of trainwell need what Optuna does not publish:

* the GP sampler (:mod:`trainwell.search.bayes`) reuses Optuna's Gaussian process, search-space
  normalization and acquisition optimizer (``optuna._gp``): :class:`GaussianProcess`;
* the workers (:mod:`trainwell.tune.worker`) claim queued trials atomically (recording who
  claimed and in which order) and keep their heartbeats, and put an interrupted trial back in
  the queue, which needs a study's storage, a trial's id and transactions on Optuna's RDB
  tables: :func:`storage_of`, :func:`trial_id`, :func:`claim_waiting`, :func:`requeue`.

Each use says in one comment why the public API is not enough. No other module of trainwell
touches a private name of Optuna (a test walks the source to keep it so). These internals move
between Optuna releases: ``pyproject.toml`` states the range the test suite has been run on.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial


# ---------------------------------------------------------------------------- studies and trials


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes."""
    # Study has no public accessor for its storage (only Trial.storage, once a trial exists)
    storage: optuna.storages.BaseStorage = study._storage
    return storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (unique across the studies of one storage)."""
    # the storage API is keyed by trial id, which Trial and FrozenTrial keep private
    return int(trial._trial_id)


#: a claimed trial's system attribute: who claimed it ({"session", "host", "pid"}) and, on an
#: RDB storage, ``seq``, the claim's place in the study's sequence of claims (commit order)
CLAIM_ATTR = "trainwell:claim"
#: set on a claimed trial once its whole configuration is stored (its parameters are written one
#: by one, so a trial holding some of them is not drawn yet)
DRAWN_ATTR = "trainwell:drawn"
#: how many times a trial was put back in the queue (an interrupted worker)
REQUEUED_ATTR = "trainwell:requeued"
_CLAIMS_KEY = "trainwell:claims"  # the study's claim counter (a study system attribute)


def claim_waiting(
    study: optuna.Study, claimant: dict[str, Any] | None = None
) -> optuna.Trial | None:
    """Atomically move one WAITING trial to RUNNING and return it; None when the queue is empty
    (what ``Study.ask`` does first, without its fallback of creating a new trial).

    On an RDB storage the claim is one conditional ``UPDATE ... WHERE state = WAITING`` whose
    row count says who won. Optuna's own ``set_trial_state_values`` reads the state first with
    ``SELECT ... FOR UPDATE``, which SQLite ignores: two workers on one SQLite study could both
    claim a trial. The same transaction records the first heartbeat and ``claimant`` (with the
    claim's sequence number) as the trial's :data:`CLAIM_ATTR`.
    """
    import optuna
    from optuna.trial import TrialState

    storage = storage_of(study)
    # a study opened on an RDBStorage holds it wrapped in a cache (_CachedStorage), whose
    # _backend is the only way back to the RDB engine the atomic claim needs
    backend = getattr(storage, "_backend", storage)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        tid = trial_id(t)
        if isinstance(backend, optuna.storages.RDBStorage):
            if _claim_rdb(backend, tid, claimant):
                return optuna.Trial(study, tid)
            continue
        try:
            if storage.set_trial_state_values(tid, TrialState.RUNNING):
                if claimant is not None:
                    storage.set_trial_system_attr(tid, CLAIM_ATTR, dict(claimant))
                return optuna.Trial(study, tid)
        except optuna.exceptions.UpdateFinishedTrialError:  # finished meanwhile
            continue
    return None


def _claim_rdb(
    storage: optuna.storages.RDBStorage, tid: int, claimant: dict[str, Any] | None = None
) -> bool:
    """WAITING -> RUNNING for one trial in a single atomic statement (with its first heartbeat
    and its claimant); whether this call won."""
    from datetime import UTC, datetime

    import sqlalchemy

    # Optuna's table models: the public storage API has no compare-and-set of a trial's state
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    # the start time Optuna's own RUNNING transition writes: naive UTC since Optuna 5 (which
    # maps the column to TrialModel._datetime_start_utc), naive local time before
    utc = hasattr(models.TrialModel, "_datetime_start_utc")
    start = datetime.now(UTC).replace(tzinfo=None) if utc else datetime.now()
    stmt = (
        sqlalchemy.update(trials)
        .where(trials.c.trial_id == tid, trials.c.state == TrialState.WAITING)
        .values(state=TrialState.RUNNING, datetime_start=start)
    )
    with storage.engine.begin() as conn:
        study_id = None
        if conn.dialect.name != "sqlite" and claimant is not None:
            # one claim of a study at a time (the study's row locked until commit), so that the
            # claims' sequence numbers follow their commit order; SQLite writers are serialized
            # by its database lock already, taken by the UPDATE below (which must come first
            # there: a transaction that reads before it writes can fail to upgrade its lock)
            study_id = _study_of(conn, models, tid)
            studies = models.StudyModel.__table__
            conn.execute(
                sqlalchemy.select(studies.c.study_id)
                .where(studies.c.study_id == study_id)
                .with_for_update()
            )
        if conn.execute(stmt).rowcount != 1:
            return False
        if claimant is not None:
            if study_id is None:
                study_id = _study_of(conn, models, tid)
            record = {**claimant, "seq": _next_claim(conn, models, study_id)}
            attrs = models.TrialSystemAttributeModel.__table__
            conn.execute(
                sqlalchemy.delete(attrs).where(
                    attrs.c.trial_id == tid, attrs.c.key.in_([CLAIM_ATTR, DRAWN_ATTR])
                )
            )
            conn.execute(
                sqlalchemy.insert(attrs).values(
                    trial_id=tid, key=CLAIM_ATTR, value_json=json.dumps(record)
                )
            )
        if storage.get_heartbeat_interval():
            # the first heartbeat in the same transaction: a worker killed right after its claim
            # leaves a trial that goes stale (and is failed and re-queued), never one RUNNING
            # forever; record_heartbeat cannot join the claim's transaction
            beats = models.TrialHeartbeatModel.__table__
            conn.execute(sqlalchemy.delete(beats).where(beats.c.trial_id == tid))
            conn.execute(sqlalchemy.insert(beats).values(trial_id=tid))
        return True


def _study_of(conn: Any, models: Any, tid: int) -> int:
    import sqlalchemy

    trials = models.TrialModel.__table__
    return int(
        conn.execute(sqlalchemy.select(trials.c.study_id).where(trials.c.trial_id == tid))
        .scalar_one()
    )


def _next_claim(conn: Any, models: Any, study_id: int) -> int:
    """Increment and return the study's claim counter, inside the claim's transaction."""
    import sqlalchemy

    attrs = models.StudySystemAttributeModel.__table__
    where = (attrs.c.study_id == study_id, attrs.c.key == _CLAIMS_KEY)
    current = conn.execute(sqlalchemy.select(attrs.c.value_json).where(*where)).scalar()
    seq = 1 if current is None else int(json.loads(current)) + 1
    if current is None:
        conn.execute(
            sqlalchemy.insert(attrs).values(
                study_id=study_id, key=_CLAIMS_KEY, value_json=json.dumps(seq)
            )
        )
    else:
        conn.execute(sqlalchemy.update(attrs).where(*where).values(value_json=json.dumps(seq)))
    return seq


def requeue(study: optuna.Study, number: int) -> bool:
    """Put RUNNING trial ``number`` back in the queue (WAITING), in one transaction: its
    parameters become its fixed parameters (it runs the same configuration again), its
    reports, heartbeat and claim are dropped. False when it was not RUNNING (or the storage is
    not an RDB storage, where a trial cannot go back to WAITING)."""
    import optuna
    import sqlalchemy
    from optuna.distributions import json_to_distribution

    # Optuna's table models: no public API moves a trial back to WAITING
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    storage = storage_of(study)
    # the RDB engine behind the cache, as in claim_waiting
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return False
    frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None:
        return False
    tid = trial_id(frozen)
    trials = models.TrialModel.__table__
    params = models.TrialParamModel.__table__
    attrs = models.TrialSystemAttributeModel.__table__
    with backend.engine.begin() as conn:
        back = conn.execute(
            sqlalchemy.update(trials)
            .where(trials.c.trial_id == tid, trials.c.state == TrialState.RUNNING)
            .values(state=TrialState.WAITING, datetime_start=None)
        )
        if back.rowcount != 1:
            return False
        rows = conn.execute(
            sqlalchemy.select(
                params.c.param_name, params.c.param_value, params.c.distribution_json
            ).where(params.c.trial_id == tid)
        ).all()
        old = conn.execute(
            sqlalchemy.select(attrs.c.key, attrs.c.value_json).where(
                attrs.c.trial_id == tid,
                attrs.c.key.in_(["fixed_params", REQUEUED_ATTR]),
            )
        ).all()
        previous = {key: json.loads(value) for key, value in old}
        fixed = dict(previous.get("fixed_params") or {})
        for name, value, dist_json in rows:
            fixed[name] = json_to_distribution(dist_json).to_external_repr(value)
        for table in (
            params,
            models.TrialIntermediateValueModel.__table__,
            models.TrialHeartbeatModel.__table__,
        ):
            conn.execute(sqlalchemy.delete(table).where(table.c.trial_id == tid))
        conn.execute(
            sqlalchemy.delete(attrs).where(
                attrs.c.trial_id == tid,
                attrs.c.key.in_([CLAIM_ATTR, DRAWN_ATTR, "fixed_params", REQUEUED_ATTR]),
            )
        )
        for key, value in (
            ("fixed_params", fixed),
            (REQUEUED_ATTR, int(previous.get(REQUEUED_ATTR, 0)) + 1),
        ):
            conn.execute(
                sqlalchemy.insert(attrs).values(trial_id=tid, key=key, value_json=json.dumps(value))
            )
    return True


# ---------------------------------------------------------------------------- the Gaussian process


class GaussianProcess:
    """Optuna's GP surrogate over one search space (``optuna._gp``), for trainwell's sampler.

    Optuna publishes its GP only inside ``GPSampler``, with log-EI as the one acquisition; the
    lecture's UCB with a decaying beta, EI with a margin and the kriging believer for parallel
    workers need the model itself.

    Args:
        search_space: the parameters' distributions (Optuna's, as a sampler receives them).
    """

    def __init__(self, search_space: dict[str, BaseDistribution]) -> None:
        # the normalization to [0, 1] that Optuna's GP and acquisition optimizer expect
        from optuna._gp import search_space as gp_space

        self.search_space = search_space
        self._space = gp_space.SearchSpace(search_space)
        self._gpr: Any = None
        self.X: np.ndarray = np.empty((0, self.dim))
        self.taken_from_also: int | None = None  # maximize's pick among its ``also`` points

    @property
    def dim(self) -> int:
        return int(self._space.dim)

    def normalize(
        self, trials: Sequence[FrozenTrial], params: list[dict[str, Any]] | None = None
    ) -> np.ndarray:
        """The trials' parameters (or ``params``, one dict per trial) scaled to [0, 1]."""
        return np.asarray(self._space.get_normalized_params(list(trials), params))

    def unnormalize(self, x: np.ndarray) -> dict[str, Any]:
        """A point of [0, 1]^dim back as parameter values."""
        return dict(self._space.get_unnormalized_param(x))

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        minimum_noise: float | None = None,
        deterministic: bool = True,
        previous: GaussianProcess | None = None,
        refit: bool = True,
    ) -> bool:
        """Fit the kernel (Matern-5/2 ARD, maximum a posteriori) to normalized ``X`` and
        standardized ``y``, starting from ``previous``'s kernel when it has the same dimension.
        ``deterministic``: the noise variance is the jitter ``minimum_noise`` only; else it is
        fitted too (Optuna's gamma prior, mode 0.0033). ``refit=False`` keeps ``previous``'s
        hyperparameters (when it was fitted on the same space) and only conditions on the
        data. Whether the hyperparameters were fitted."""
        # the GP fit and its kernel prior, which GPSampler keeps to itself
        import torch
        from optuna._gp import gp, prior

        cache = previous._gpr if previous is not None and previous.dim == self.dim else None
        self.X = X
        same_space = previous is not None and previous.search_space == self.search_space
        if not refit and cache is not None and same_space:
            # the previous kernel's hyperparameters, as they are, on the new data:
            # fit_kernel_params always optimizes them, so this needs the regressor itself
            self._gpr = gp.GPRegressor(
                is_categorical=torch.from_numpy(self._space.is_categorical),
                X_train=torch.from_numpy(X),
                y_train=torch.from_numpy(y),
                inverse_squared_lengthscales=cache.inverse_squared_lengthscales,
                kernel_scale=cache.kernel_scale,
                noise_var=cache.noise_var,
            )
            self._gpr._cache_matrix()
            return False
        self._gpr = gp.fit_kernel_params(
            X=X,
            Y=y,
            is_categorical=self._space.is_categorical,
            log_prior=prior.default_log_prior,
            minimum_noise=prior.DEFAULT_MINIMUM_NOISE_VAR
            if minimum_noise is None
            else minimum_noise,
            gpr_cache=cache,
            deterministic_objective=deterministic,
        )
        return True

    def log_marginal_likelihood(self) -> float:
        """The fitted GP's log marginal likelihood of its training values (up to the constant
        ``-n/2 log(2 pi)``)."""
        import torch

        with torch.no_grad():
            return float(self._gpr.marginal_log_likelihood())

    @property
    def continuous(self) -> np.ndarray:
        """A mask of the continuous parameters (the ones a box restricts)."""
        mask = np.zeros(self.dim, dtype=bool)
        mask[self._space.continuous_indices] = True
        return mask

    @property
    def length_scales(self) -> np.ndarray:
        """The fitted kernel's length scale of each normalized parameter."""
        return np.asarray(self._gpr.length_scales, dtype=float)

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mean and variance at normalized points ``x``."""
        import torch

        with torch.no_grad():
            mean, var = self._gpr.posterior(torch.from_numpy(np.asarray(x, dtype=np.float64)))
        return mean.numpy(), var.numpy()

    def add_pending(self, x: np.ndarray) -> np.ndarray:
        """Count points being evaluated as observed at their predicted mean (kriging believer),
        so that concurrent workers do not all pick the same point; the believed means."""
        import torch

        x_t = torch.from_numpy(np.asarray(x, dtype=np.float64))
        with torch.no_grad():
            mean, _ = self._gpr.posterior(x_t)
        self._gpr.append_running_data(x_t, mean)
        return np.asarray(mean.numpy(), dtype=float).reshape(-1)

    def ucb(self, beta: float) -> Any:
        """The acquisition ``mu + beta * sigma`` (lecture 002)."""
        ucb_cls, _ = _acquisition_classes()
        return ucb_cls(self._gpr, self._space, beta)

    def log_ei(self, best: float, delta: float = 0.0) -> Any:
        """The acquisition ``log EI`` with threshold ``best + delta`` (same argmax as EI)."""
        _, ei_cls = _acquisition_classes()
        return ei_cls(self._gpr, self._space, best, delta)

    @staticmethod
    def evaluate(acqf: Any, x: np.ndarray) -> np.ndarray:
        """An acquisition's values at normalized points ``x``."""
        return np.asarray(acqf.eval_acqf_no_grad(np.asarray(x, dtype=np.float64)))

    def maximize(
        self,
        acqf: Any,
        *,
        start: np.ndarray,
        n_candidates: int,
        n_local_search: int,
        tol: float,
        rng: np.random.RandomState,
        box: tuple[np.ndarray, np.ndarray] | None = None,
        also: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The parameters maximizing ``acqf``: Sobol candidates scored, then batched L-BFGS-B
        from the best of them and from ``start`` (normalized points, one per row).

        ``box`` = (low, high), normalized: search only that box (a trust region) on the
        continuous parameters (wide ints relaxed to floats among them); categorical and discrete
        ones keep their whole range. ``also``: normalized points (one per row, anywhere) scored
        by ``acqf`` on the whole space; the best of them replaces the optimum found when it
        scores higher (its row is then ``taken_from_also``, else that is None)."""
        # Optuna's mixed continuous / discrete acquisition optimizer: not published either
        from optuna._gp import optim_mixed

        low = width = None
        whole = acqf  # the acquisition on the whole space, for the candidates ``also``
        if box is not None:
            # the optimizer searches the unit cube: it gets the acquisition of u, mapped to
            # low + u * width on the continuous parameters
            cont = self.continuous
            low = np.where(cont, box[0], 0.0)
            width = np.where(cont, np.maximum(box[1] - box[0], 1e-12), 1.0)
            acqf = _boxed_acquisition_class()(acqf, low, width)
            start = np.clip((start - low) / width, 0.0, 1.0)
        x_next, _ = optim_mixed.optimize_acqf_mixed(
            acqf,
            warmstart_normalized_params_array=start,
            n_preliminary_samples=n_candidates,
            n_local_search=n_local_search,
            tol=tol,
            rng=rng,
        )
        if low is not None and width is not None:
            x_next = np.clip(low + x_next * width, 0.0, 1.0)
        self.taken_from_also = None  # the row of ``also`` taken, if one was
        if also is not None and len(also):
            scores = whole.eval_acqf_no_grad(np.ascontiguousarray(also, dtype=np.float64))
            best = int(np.argmax(scores))
            if scores[best] > float(whole.eval_acqf_no_grad(x_next[None])[0]):
                x_next, self.taken_from_also = also[best], best
        return self.unnormalize(x_next)


@functools.cache
def _acquisition_classes() -> tuple[type, type]:
    """UCB and EI as Optuna acquisition functions, built lazily (their base imports torch)."""
    import torch

    # the base class Optuna's acquisition optimizer takes: subclassing it is the only way to
    # hand that optimizer an acquisition of our own
    from optuna._gp import acqf as acqf_module

    class UCBAcquisition(acqf_module.BaseAcquisitionFunc):
        """``mu + beta * sigma`` (lecture 002; beta multiplies sigma, not the variance)."""

        def __init__(self, gpr: Any, search_space: Any, beta: float) -> None:
            self._gpr = gpr
            self.beta = beta
            super().__init__(gpr.length_scales, search_space)

        def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
            mean, var = self._gpr.posterior(x)
            return mean + self.beta * torch.sqrt(var.clamp_min(1e-20))

    class EIAcquisition(acqf_module.BaseAcquisitionFunc):
        """``log EI`` with the lecture's margin ``delta``; the log keeps gradients alive far
        from the incumbent and has the same argmax as EI."""

        def __init__(self, gpr: Any, search_space: Any, best: float, delta: float) -> None:
            self._gpr = gpr
            self.f0 = best + delta
            super().__init__(gpr.length_scales, search_space)

        def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
            mean, var = self._gpr.posterior(x)
            return acqf_module.logei(mean=mean, var=var + 1e-12, f0=self.f0)

    return UCBAcquisition, EIAcquisition


@functools.cache
def _boxed_acquisition_class() -> type:
    """An acquisition restricted to a box: the optimizer's unit cube mapped onto it."""
    import torch
    from optuna._gp import acqf as acqf_module  # the optimizer's base class, as above

    class BoxedAcquisition(acqf_module.BaseAcquisitionFunc):
        def __init__(self, inner: Any, low: np.ndarray, width: np.ndarray) -> None:
            self.inner = inner
            self.low = torch.from_numpy(np.asarray(low, dtype=np.float64))
            self.width = torch.from_numpy(np.asarray(width, dtype=np.float64))
            # the optimizer preconditions its steps by the length scales, which in u are the
            # kernel's divided by the box's width
            super().__init__(inner.length_scales / width, inner.search_space)

        def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.eval_acqf(self.low + x * self.width)

    return BoxedAcquisition


__all__ = [
    "CLAIM_ATTR",
    "DRAWN_ATTR",
    "REQUEUED_ATTR",
    "GaussianProcess",
    "claim_waiting",
    "requeue",
    "storage_of",
    "trial_id",
]
