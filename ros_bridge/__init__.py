"""ROS 2 bridge (deployment over CRTK/dVRK topics); built in a later issue."""
