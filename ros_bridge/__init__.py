"""ROS 2 bridge: deploy a trained policy to a CRTK/dVRK arm, or run a sim twin on the same topics.

``messages`` (the message model, from rosbags), ``wire`` (ROS 2 over DDS), ``transport``
(rclpy, Cyclone DDS, in-process), ``profiles`` (dvrk, ros2_control), ``shield`` (the safety
shield), ``nodes`` (policy runner, sim twin), ``recorder`` (rosbag2 MCAP) and ``cli``
(``surgisim ros ...``). The guide is docs/deployment.md.
"""
