"""The "human" drivers that PilotNet imitates: controllers that read the simulator's state.

PilotNet learned from people driving; here the teacher is a controller with privileged access to
the simulator (the track's centre line, every vehicle's position), so demonstrations are free,
consistent and can label *any* state — which is what DAgger needs.

- ``CarRacingExpert``: pure pursuit (Coulter 1992) on CarRacing's track centre line, with a speed
  target that falls with the curvature ahead (gas below it, brake well above it).
- ``HighwayExpert``: lane keeping + gap acceptance on the discrete speed targets + safe lane changes, decided from
  the vehicles on the road and sent as highway-env's default ``DiscreteMetaAction``
  (LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER): the env's own low-level controller then steers
  to the chosen lane and tracks the chosen speed.
"""

from __future__ import annotations

import math

import numpy as np

# CarRacing: the car's forward axis is its body's local +y; its local +x points to its right
# (world y up), and the env's action[0] = +1 steers right.


def car_pose(env) -> tuple[np.ndarray, float, np.ndarray]:
    """Position (2,), heading angle (rad, CarRacing's convention) and velocity (2,) of the car."""
    hull = env.unwrapped.car.hull
    return (np.array([hull.position[0], hull.position[1]]), float(hull.angle),
            np.array([hull.linearVelocity[0], hull.linearVelocity[1]]))


def track_points(env) -> np.ndarray:
    """The track centre line (n, 2): CarRacing's ``track`` holds (alpha, beta, x, y) per tile."""
    return np.asarray(env.unwrapped.track, dtype=float)[:, 2:4]


def to_car_frame(points: np.ndarray, position: np.ndarray, angle: float) -> np.ndarray:
    """World points (..., 2) → (right, forward) coordinates in the car's frame."""
    offset = np.asarray(points, dtype=float) - position
    right = np.array([math.cos(angle), math.sin(angle)])
    forward = np.array([-math.sin(angle), math.cos(angle)])
    return np.stack([offset @ right, offset @ forward], axis=-1)


def nearest_track_index(env, position: np.ndarray, hint: int | None = None, window: int = 30) -> int:
    """Index of the centre-line point nearest the car; searches around ``hint`` when given (the
    track can pass close to itself, and a global search would jump to the other branch)."""
    points = track_points(env)
    n = len(points)
    candidates = np.arange(n) if hint is None else (hint + np.arange(-window, window + 1)) % n
    distances = np.linalg.norm(points[candidates] - position, axis=1)
    return int(candidates[int(np.argmin(distances))])


def track_errors(env, hint: int | None = None) -> tuple[float, float, int]:
    """Distance of the car from the centre line [m], heading error against the track direction
    [rad, wrapped to (-pi, pi)] and the nearest centre-line index: what counts as 'off the road'."""
    position, angle, _ = car_pose(env)
    points = track_points(env)
    index = nearest_track_index(env, position, hint)
    nxt = points[(index + 1) % len(points)]
    direction = nxt - points[index]
    track_heading = math.atan2(direction[1], direction[0])
    car_heading = angle + math.pi / 2  # the car's forward (local +y) as a world angle
    heading_error = (car_heading - track_heading + math.pi) % (2 * math.pi) - math.pi
    # distance to the segment, not to the vertex, so a car between two points is not penalised
    t = np.clip(np.dot(position - points[index], direction) / max(np.dot(direction, direction), 1e-9), 0, 1)
    distance = float(np.linalg.norm(position - (points[index] + t * direction)))
    return distance, float(heading_error), index


# CarRacing's car (gymnasium car_dynamics): front and rear axles 80 and 82 body units from the
# centre at SIZE 0.02 → 3.24 m wheelbase; the steering joint stops at ±0.4 rad (action ±1)
WHEELBASE = 3.24
MAX_WHEEL_ANGLE = 0.4


def speed_control(target: float, speed: float) -> tuple[float, float]:
    """(gas, brake) of a proportional speed controller: gas below the target, brake above it, never
    both; brake stops at 0.8 (≥ 0.9 locks CarRacing's wheels)."""
    return float(np.clip((target - speed) / 10, 0, 1)), float(np.clip((speed - target) / 10, 0, 0.8))


def car_speed(env) -> float:
    """The speedometer: the car body's speed (a car's cruise control reads its wheel speed, not a camera)."""
    return float(np.linalg.norm(car_pose(env)[2]))


def centre_line_ahead(points: np.ndarray, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The next ``count`` centre-line points from ``index`` (wrapping round the lap) and their
    distance along the line from the first one."""
    ahead = points[(index + np.arange(count)) % len(points)]
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ahead, axis=0), axis=1))])
    return ahead, along


class CarRacingExpert:
    """Pure pursuit on the track centre line, speed limited by the bends ahead.

    Steering: aim at the centre-line point ``lookahead_s`` seconds of travel ahead (at least
    ``min_lookahead`` m) and command the front-wheel angle of the pure-pursuit arc through it,
    atan(2 L sin(alpha) / Ld), as a fraction of the 0.4 rad lock.
    Speed: each point ahead has a cornering limit sqrt(lateral_accel / curvature); the speed
    allowed now is the lowest of those once braking over the distance to it is allowed for,
    sqrt(v_i² + 2 · brake_accel · s_i). Gas below it, brake above it.

    Sight distance: the expert looks only ``preview_m`` = 40 m ahead — about what CarRacing's 96x96
    camera shows ahead of the car (~36 m) — and keeps a speed from which it could still slow to
    ``horizon_speed`` by the end of it (a hairpin may hide behind). So its speed choice depends on
    what the camera sees, and a clone can learn it. Measured on training tracks 0–3, this costs
    ~5 points of return against a 120 m preview without the horizon rule (870.7 vs 875.9).
    """

    def __init__(self, lookahead_s: float = 0.25, min_lookahead: float = 7.0, lateral_accel: float = 60.0,
                 brake_accel: float = 40.0, max_speed: float = 110.0, preview_m: float = 40.0,
                 horizon_speed: float | None = 40.0):
        self.lookahead_s = lookahead_s
        self.min_lookahead = min_lookahead
        self.lateral_accel = lateral_accel
        self.brake_accel = brake_accel
        self.max_speed = max_speed
        self.preview_m = preview_m
        self.horizon_speed = horizon_speed
        self.target_speed_: float = 0.0
        self._index: int | None = None

    def reset(self) -> None:
        self._index = None

    def allowed_speed(self, ahead: np.ndarray, along: np.ndarray) -> float:
        """The highest speed from which every bend in ``ahead`` can still be taken."""
        heading = np.arctan2(np.diff(ahead[:, 1]), np.diff(ahead[:, 0]))
        turn = np.abs(np.angle(np.exp(1j * np.diff(heading))))  # heading change per segment
        step = np.maximum(np.diff(along)[1:], 1e-6)
        curvature = turn / step
        # smooth over 3 segments: one kinked tile is not a hairpin
        curvature = np.convolve(curvature, np.ones(3) / 3, mode="same")
        corner = np.sqrt(self.lateral_accel / np.maximum(curvature, 1e-6))
        reachable = np.sqrt(corner ** 2 + 2 * self.brake_accel * along[1:-1])
        limit = min(self.max_speed, float(reachable.min()))
        if self.horizon_speed is not None:
            # sight distance: beyond the preview there may be a hairpin, so be able to slow to
            # ``horizon_speed`` by the end of what is seen
            limit = min(limit, float(np.sqrt(self.horizon_speed ** 2 + 2 * self.brake_accel * along[-1])))
        return limit

    def act(self, env, obs=None) -> np.ndarray:
        position, angle, velocity = car_pose(env)
        self._index = nearest_track_index(env, position, self._index)
        points = track_points(env)
        speed = float(np.linalg.norm(velocity))
        ahead, along = centre_line_ahead(points, self._index, int(self.preview_m / 3.0) + 2)
        distance = max(self.min_lookahead, self.lookahead_s * speed)
        target_index = int(min(np.searchsorted(along, distance), len(along) - 1))
        right, forward = to_car_frame(ahead[target_index], position, angle)
        alpha = math.atan2(right, forward)
        reach = max(math.hypot(right, forward), 1e-3)
        wheel = math.atan2(2 * WHEELBASE * math.sin(alpha), reach)
        steer = float(np.clip(wheel / MAX_WHEEL_ANGLE, -1, 1))
        wanted = self.allowed_speed(ahead, along)
        self.target_speed_ = wanted
        return np.array([steer, *speed_control(wanted, speed)], dtype=np.float32)


class HighwayExpert:
    """Gap acceptance on highway-env's discrete speeds + safe lane changes, for highway-env scenes.

    It reads the road (``env.unwrapped.road``) and answers in the scene's own action type:
    - ``DiscreteMetaAction`` (highway, highway-fast, merge, roundabout; intersection's is
      longitudinal only): the env's controller keeps the lane and tracks one of the ego's target
      speeds (20, 25, 30 m/s on highway-fast), so the expert only decides, once a second. A speed is
      *safe* behind a leader when the gap covers a standstill margin, a time headway and the
      closing over one decision interval plus the braking needed to shed the speed difference:
      ``min_gap + headway·v + (v − v_lead)⁺·interval + (v − v_lead)⁺² / (2·brake)``. The expert
      asks SLOWER when its current target is not safe, FASTER when the next one is. It changes lane
      when the neighbouring lane allows a higher safe speed (or, at equal speed below the top one,
      a gap ``change_margin`` m longer), the car that would follow there keeps the same kind of
      margin behind it (with ``rear_headway``), and no change is under way.
    - ``ContinuousAction`` with steering only (racetrack): the steering of highway-env's own lane
      follower (``ControlledVehicle.steering_control``) on the current lane, as a fraction of the
      steering range (with longitudinal control too, it holds its speed).

    The defaults were chosen on training seeds (3,000+): a wider margin gives up speed for nothing,
    a tighter one buys ~1 m/s for several % of crashes (docs/drive.md shows the measured frontier).
    """

    def __init__(self, min_gap: float = 8.0, headway: float = 0.8, brake: float = 4.0, interval: float = 1.0,
                 change_margin: float = 15.0, rear_headway: float = 0.6):
        self.min_gap, self.headway, self.brake, self.interval = min_gap, headway, brake, interval
        self.change_margin, self.rear_headway = change_margin, rear_headway

    def reset(self) -> None:
        pass

    @staticmethod
    def gaps(road, ego, lane_index) -> tuple[tuple[float, float], tuple[float, float]]:
        """((gap, speed) of the leader, (gap, speed) of the follower) of ``ego`` in ``lane_index``;
        bumper-to-bumper gaps along the lane, ``inf`` where there is none."""
        lane = road.network.get_lane(lane_index)
        here = lane.local_coordinates(ego.position)[0]
        front, rear = road.neighbour_vehicles(ego, lane_index)
        leader = ((lane.local_coordinates(front.position)[0] - here - (front.LENGTH + ego.LENGTH) / 2,
                   float(front.speed)) if front is not None else (math.inf, math.inf))
        follower = ((here - lane.local_coordinates(rear.position)[0] - (rear.LENGTH + ego.LENGTH) / 2,
                     float(rear.speed)) if rear is not None else (math.inf, 0.0))
        return leader, follower

    def needed_gap(self, speed: float, other_speed: float, headway: float) -> float:
        """The gap a car at ``speed`` needs behind one at ``other_speed``."""
        closing = max(0.0, speed - other_speed)
        return self.min_gap + headway * speed + closing * self.interval + closing ** 2 / (2 * self.brake)

    def safe_speed(self, speeds, leader: tuple[float, float]) -> float | None:
        """The highest of ``speeds`` that is safe behind ``leader`` (None: even the lowest is not)."""
        gap, lead_speed = leader
        safe = [v for v in speeds if gap >= self.needed_gap(v, lead_speed, self.headway)]
        return max(safe) if safe else None

    @staticmethod
    def side_lanes(road, ego, allowed):
        """(action name, lane index) of each neighbouring lane the ego may change into now."""
        for side_lane in road.network.side_lanes(ego.lane_index):
            name = "LANE_LEFT" if side_lane[2] < ego.lane_index[2] else "LANE_RIGHT"
            if allowed(name) and road.network.get_lane(side_lane).is_reachable_from(ego.position):
                yield name, side_lane

    def escape_lane(self, road, ego, leader: tuple[float, float], allowed) -> str | None:
        """The neighbouring lane whose leader the ego reaches last (time to collision), if it beats
        staying and the car that would follow leaves at least the standstill margin."""

        def time_to_reach(gap: float, lead_speed: float) -> float:
            closing = ego.speed - lead_speed
            return math.inf if closing <= 0 else gap / closing

        best, best_time = None, time_to_reach(*leader)
        for name, side_lane in self.side_lanes(road, ego, allowed):
            new_leader, new_follower = self.gaps(road, ego, side_lane)
            if new_leader[0] < self.min_gap or new_follower[0] < self.needed_gap(new_follower[1], ego.speed, 0.0):
                continue
            there = time_to_reach(*new_leader)
            if there > best_time:
                best, best_time = name, there
        return best

    def act(self, env, obs=None):
        from highway_env.envs.common.action import ContinuousAction, DiscreteMetaAction

        unwrapped = env.unwrapped
        action_type, ego, road = unwrapped.action_type, unwrapped.vehicle, unwrapped.road
        if isinstance(action_type, ContinuousAction):
            return self._steer(action_type, ego)
        if not isinstance(action_type, DiscreteMetaAction):
            raise TypeError(f"HighwayExpert handles DiscreteMetaAction and ContinuousAction, not {action_type}")
        index = {name: i for i, name in action_type.actions.items()}
        available = set(unwrapped.get_available_actions())

        def allowed(name: str) -> bool:
            return name in index and index[name] in available

        speeds = [float(v) for v in getattr(ego, "target_speeds", [ego.speed])]
        current = speeds[int(getattr(ego, "speed_index", 0))]
        leader, _ = self.gaps(road, ego, ego.lane_index)
        here = self.safe_speed(speeds, leader)
        if (here is None or here < current) and allowed("SLOWER"):
            return index["SLOWER"]  # safety first: shed speed before anything else
        if here is None:
            # already at the lowest target speed (20 m/s on highway-fast) behind a slower car: the
            # env cannot slow the ego further, so the only way out is sideways
            escape = self.escape_lane(road, ego, leader, allowed)
            if escape is not None:
                return index[escape]
        best, best_key = None, (here if here is not None else -1.0, min(leader[0], 200.0))
        if ego.target_lane_index == ego.lane_index:  # never start a change while one is under way
            for name, side_lane in self.side_lanes(road, ego, allowed):
                new_leader, new_follower = self.gaps(road, ego, side_lane)
                if new_follower[0] < self.needed_gap(new_follower[1], ego.speed, self.rear_headway):
                    continue
                if new_leader[0] < self.needed_gap(ego.speed, new_leader[1], self.headway):
                    continue
                there = self.safe_speed(speeds, new_leader)
                key = (there if there is not None else -1.0, min(new_leader[0], 200.0))
                if key[0] > best_key[0] or (key[0] == best_key[0] < max(speeds)
                                            and key[1] > best_key[1] + self.change_margin):
                    best, best_key = name, key
        if best is not None:
            return index[best]
        if here is not None and here > current and allowed("FASTER"):
            return index["FASTER"]
        return index["IDLE"]

    @staticmethod
    def _steer(action_type, ego) -> np.ndarray:
        """highway-env's own lane follower (``ControlledVehicle.steering_control``) for the ego's state.

        The ego of a continuous-action scene is a plain ``Vehicle`` without the controller's gains,
        so the method runs on a stand-in carrying the ego's state and ``ControlledVehicle``'s gains."""
        from types import SimpleNamespace

        from highway_env.vehicle.controller import ControlledVehicle

        stand_in = SimpleNamespace(
            road=ego.road, position=ego.position, speed=ego.speed, heading=ego.heading, LENGTH=ego.LENGTH,
            **{name: getattr(ControlledVehicle, name)
               for name in ("TAU_PURSUIT", "KP_LATERAL", "KP_HEADING", "MAX_STEERING_ANGLE")})
        steering = ControlledVehicle.steering_control(stand_in, ego.lane_index)
        low, high = action_type.steering_range
        command = [float(np.clip(2 * (steering - low) / (high - low) - 1, -1, 1))]
        if action_type.longitudinal:  # hold the speed: zero acceleration
            command = [0.0, *command]
        return np.array(command, dtype=np.float32)


def expert_for(env):
    """The expert that drives ``env`` (by its kind)."""
    from .envs import is_carracing

    return CarRacingExpert() if is_carracing(env) else HighwayExpert()
