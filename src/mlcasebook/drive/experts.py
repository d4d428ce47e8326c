"""The "human" drivers that PilotNet imitates: controllers that read the simulator's state.

PilotNet learned from people driving; here the teacher is a controller with privileged access to
the simulator (the track's centre line, every vehicle's position), so demonstrations are free,
consistent and can label *any* state — which is what DAgger needs.

- ``CarRacingExpert``: pure pursuit (Coulter 1992) on CarRacing's track centre line, with a speed
  target that falls with the curvature ahead (gas below it, brake well above it).
- ``HighwayExpert``: lane keeping + IDM car-following + MOBIL-style lane changes, decided from
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
    """Lane keeping + IDM car-following + safe lane changes, for highway-env scenes.

    It reads the road (``env.unwrapped.road``) and answers in the scene's own action type:
    - ``DiscreteMetaAction`` (highway, highway-fast, merge, roundabout; intersection's is
      longitudinal only): the env's controller keeps the lane and tracks one of its target speeds,
      so the expert only decides. IDM (Treiber et al. 2000) gives the acceleration the gap to the
      car ahead allows; the expert asks FASTER when it is clearly positive and the next speed step
      keeps a safe time gap, SLOWER when it is negative. A lane change (MOBIL, Kesting et al. 2007,
      without politeness) is taken when the target lane's IDM acceleration beats the current one by
      ``change_gain`` and the new follower would not have to brake harder than ``safe_brake``.
    - ``ContinuousAction`` with steering only (racetrack): the steering of highway-env's own lane
      follower (``ControlledVehicle.steering_control``) on the current lane, as a fraction of the
      steering range (with longitudinal control too, it holds its speed).
    """

    def __init__(self, desired_speed: float = 32.0, time_gap: float = 1.0, min_gap: float = 6.0,
                 comfort_accel: float = 3.0, comfort_brake: float = 5.0, safe_brake: float = 3.0,
                 change_gain: float = 0.3):
        self.desired_speed = desired_speed
        self.time_gap = time_gap
        self.min_gap = min_gap
        self.comfort_accel = comfort_accel
        self.comfort_brake = comfort_brake
        self.safe_brake = safe_brake
        self.change_gain = change_gain

    def reset(self) -> None:
        pass

    def idm(self, speed: float, front, ego) -> float:
        """IDM acceleration of a car at ``speed`` behind ``front`` (None: free road)."""
        free = self.comfort_accel * (1 - (speed / self.desired_speed) ** 4)
        if front is None:
            return free
        gap = max(float(ego.lane_distance_to(front)) - (front.LENGTH + ego.LENGTH) / 2, 0.1)
        closing = speed - float(front.speed)
        wanted = self.min_gap + max(0.0, speed * self.time_gap
                                    + speed * closing / (2 * math.sqrt(self.comfort_accel * self.comfort_brake)))
        return free - self.comfort_accel * (wanted / gap) ** 2

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
        front, _ = road.neighbour_vehicles(ego, ego.lane_index)
        here = self.idm(ego.speed, front, ego)
        # lane change: the best adjacent lane by IDM acceleration, if safe for its follower
        best, best_gain = None, self.change_gain
        for side_lane in road.network.side_lanes(ego.lane_index):
            name = "LANE_LEFT" if side_lane[2] < ego.lane_index[2] else "LANE_RIGHT"
            if name not in index or index[name] not in available:
                continue
            if not road.network.get_lane(side_lane).is_reachable_from(ego.position):
                continue
            new_front, new_rear = road.neighbour_vehicles(ego, side_lane)
            if new_rear is not None and self.idm(new_rear.speed, ego, new_rear) < -self.safe_brake:
                continue
            if new_front is not None and ego.lane_distance_to(new_front) < self.min_gap + ego.LENGTH:
                continue
            gain = self.idm(ego.speed, new_front, ego) - here
            if gain > best_gain:
                best, best_gain = name, gain
        # never change lanes while a change is still under way (the target lane differs)
        if best is not None and ego.target_lane_index == ego.lane_index:
            return index[best]
        speeds = getattr(ego, "target_speeds", np.array([ego.speed]))
        step_up = speeds[min(int(ego.speed_index) + 1, len(speeds) - 1)] if hasattr(ego, "speed_index") else ego.speed
        if here < -0.5 and "SLOWER" in index and index["SLOWER"] in available:
            return index["SLOWER"]
        if (here > 0.5 and self.idm(float(step_up), front, ego) > -1.0 and "FASTER" in index
                and index["FASTER"] in available):
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
