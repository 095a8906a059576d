"""Helpers shared by the fixture scripts (tests/make_fixtures.py, tests/make_optim_fixtures.py)
for writing HDF5 files whose bytes depend only on their content, so that running a script
again gives byte-identical files.

Import it from a script in this folder as:  from fixture_util import h5_create, h5_group
(Python puts the running script's folder first on sys.path).
"""

import h5py

ORDER = h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED


def h5_create(path):
    """Creates (truncating) an HDF5 file whose bytes depend only on its content: no object
    timestamps, and links and attributes kept in creation order (h5py's default order is
    alphabetical). Returns an open h5py.File; the caller closes it."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(ORDER)
    fcpl.set_attr_creation_order(ORDER)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl))


def h5_group(parent, name):
    """Creates the group name under parent (an h5py File or Group) without timestamps, its
    links in creation order, and returns it as an h5py.Group."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    gcpl.set_link_creation_order(ORDER)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))
