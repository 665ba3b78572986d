# pragma version 0.4.3
# @title WorkerRegistryList
# @notice The EEA registry list: where an organization's worker registries live (URI and contract address),
#         looked up by application type in pages; the sender that adds a registry owns it.

MAX_REGISTRIES: constant(uint256) = 1024
MAX_APP_TYPES: constant(uint256) = 8
PAGE: constant(uint256) = 16

struct Registry:
    uri: String[256]
    scAddress: address
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]
    status: uint256
    owner: address

event RegistryAdded:
    orgId: indexed(bytes32)
    uri: String[256]
    scAddress: address
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]

event RegistryUpdated:
    orgId: indexed(bytes32)
    uri: String[256]
    scAddress: address
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]

event RegistryStatusChanged:
    orgId: indexed(bytes32)
    status: uint256

registries: HashMap[bytes32, Registry]
orgIds: public(DynArray[bytes32, MAX_REGISTRIES])


@external
def registryAdd(orgId: bytes32, uri: String[256], scAddress: address, applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]):
    assert orgId != empty(bytes32), "organization id is empty"
    assert self.registries[orgId].owner == empty(address), "the organization has a registry already"
    self.registries[orgId] = Registry(uri=uri, scAddress=scAddress, applicationTypeIds=applicationTypeIds, status=1, owner=msg.sender)
    self.orgIds.append(orgId)
    log RegistryAdded(orgId=orgId, uri=uri, scAddress=scAddress, applicationTypeIds=applicationTypeIds)


@external
def registryUpdate(orgId: bytes32, uri: String[256], scAddress: address, applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]):
    assert self.registries[orgId].owner == msg.sender, "only the registry's owner may update it"
    self.registries[orgId].uri = uri
    self.registries[orgId].scAddress = scAddress
    self.registries[orgId].applicationTypeIds = applicationTypeIds
    log RegistryUpdated(orgId=orgId, uri=uri, scAddress=scAddress, applicationTypeIds=applicationTypeIds)


@external
def registrySetStatus(orgId: bytes32, status: uint256):
    """1 active, 2 off-line, 3 decommissioned."""
    assert self.registries[orgId].owner == msg.sender, "only the registry's owner may set its status"
    assert status >= 1 and status <= 3, "status must be 1 to 3"
    self.registries[orgId].status = status
    log RegistryStatusChanged(orgId=orgId, status=status)


@internal
@view
def _page(applicationTypeId: bytes32, start: uint256) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    total: uint256 = 0
    ids: DynArray[bytes32, PAGE] = []
    tag: String[78] = ""
    for i: uint256 in range(len(self.orgIds), bound=MAX_REGISTRIES):
        oid: bytes32 = self.orgIds[i]
        if applicationTypeId != empty(bytes32) and applicationTypeId not in self.registries[oid].applicationTypeIds:
            continue
        total += 1
        if i < start:
            continue
        if len(ids) < PAGE:
            ids.append(oid)
        elif tag == "":
            tag = uint2str(i)
    return total, tag, ids


@external
@view
def registryLookUp(applicationTypeId: bytes32) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    return self._page(applicationTypeId, 0)


@external
@view
def registryLookUpNext(applicationTypeId: bytes32, lookUpTag: String[78]) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    digits: Bytes[78] = convert(lookUpTag, Bytes[78])
    assert len(digits) > 0 and len(digits) <= 8, "not a tag registryLookUp returned"
    start: uint256 = 0
    for i: uint256 in range(len(digits), bound=78):
        d: uint256 = convert(slice(digits, i, 1), uint256)
        assert d >= 48 and d <= 57, "not a tag registryLookUp returned"
        start = start * 10 + d - 48
    return self._page(applicationTypeId, start)


@external
@view
def registryRetrieve(orgId: bytes32) -> (String[256], address, DynArray[bytes32, MAX_APP_TYPES], uint256):
    """(uri, scAddress, applicationTypeIds, status); status 0 for an unknown organization."""
    r: Registry = self.registries[orgId]
    return r.uri, r.scAddress, r.applicationTypeIds, r.status
