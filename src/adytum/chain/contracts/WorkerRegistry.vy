# pragma version 0.4.3
# @title WorkerRegistry
# @notice The EEA worker registry (Off-Chain Trusted Compute v1.1, proxy model): workers, their details and
#         status, looked up by type, organization and application type, in pages that resume from a tag.
#         Beyond the spec each worker carries `signer`, the address of its secp256k1 verification key (what
#         WorkOrderRegistry checks result signatures against), and `evidenceHash`, the SHA-256 of its
#         attestation evidence. The evidence itself is only logged (WorkerRegistered/WorkerUpdated at
#         `evidenceBlock`): any client fetches it from that event, or anywhere, and checks it against the hash.

MAX_WORKERS: constant(uint256) = 1024
MAX_APP_TYPES: constant(uint256) = 8
PAGE: constant(uint256) = 16
MAX_DETAILS: constant(uint256) = 8192
MAX_EVIDENCE: constant(uint256) = 32768

ACTIVE: constant(uint256) = 1
DECOMMISSIONED: constant(uint256) = 3
COMPROMISED: constant(uint256) = 4

struct Worker:
    status: uint256
    workerType: uint256
    organizationId: bytes32
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]
    details: String[MAX_DETAILS]
    signer: address
    evidenceHash: bytes32
    evidenceBlock: uint256
    owner: address

event WorkerRegistered:
    workerId: indexed(bytes32)
    workerType: indexed(uint256)
    organizationId: indexed(bytes32)
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES]
    details: String[MAX_DETAILS]
    signer: address
    evidence: String[MAX_EVIDENCE]
    evidenceHash: bytes32
    owner: address

event WorkerUpdated:
    workerId: indexed(bytes32)
    details: String[MAX_DETAILS]
    signer: address
    evidence: String[MAX_EVIDENCE]
    evidenceHash: bytes32

event WorkerStatusChanged:
    workerId: indexed(bytes32)
    status: uint256

workers: HashMap[bytes32, Worker]
workerIds: public(DynArray[bytes32, MAX_WORKERS])


@external
def workerRegister(
    workerId: bytes32,
    workerType: uint256,
    organizationId: bytes32,
    applicationTypeIds: DynArray[bytes32, MAX_APP_TYPES],
    details: String[MAX_DETAILS],
    signer: address,
    evidence: String[MAX_EVIDENCE],
):
    """The sender registers a new worker and owns it: only it may update it or set its status."""
    assert workerId != empty(bytes32), "worker id is empty"
    assert self.workers[workerId].owner == empty(address), "worker is already registered"
    assert signer != empty(address), "the worker needs a verification key"
    evidenceHash: bytes32 = sha256(evidence)
    self.workers[workerId] = Worker(
        status=ACTIVE,
        workerType=workerType,
        organizationId=organizationId,
        applicationTypeIds=applicationTypeIds,
        details=details,
        signer=signer,
        evidenceHash=evidenceHash,
        evidenceBlock=block.number,
        owner=msg.sender,
    )
    self.workerIds.append(workerId)
    log WorkerRegistered(
        workerId=workerId,
        workerType=workerType,
        organizationId=organizationId,
        applicationTypeIds=applicationTypeIds,
        details=details,
        signer=signer,
        evidence=evidence,
        evidenceHash=evidenceHash,
        owner=msg.sender,
    )


@external
def workerUpdate(workerId: bytes32, details: String[MAX_DETAILS], signer: address, evidence: String[MAX_EVIDENCE]):
    """New details (a rotated key, fresh evidence): by the owner only."""
    assert self.workers[workerId].owner == msg.sender, "only the worker's owner may update it"
    assert signer != empty(address), "the worker needs a verification key"
    evidenceHash: bytes32 = sha256(evidence)
    self.workers[workerId].details = details
    self.workers[workerId].signer = signer
    self.workers[workerId].evidenceHash = evidenceHash
    self.workers[workerId].evidenceBlock = block.number
    log WorkerUpdated(workerId=workerId, details=details, signer=signer, evidence=evidence, evidenceHash=evidenceHash)


@external
def workerSetStatus(workerId: bytes32, status: uint256):
    """EEA status: 1 active, 2 off-line, 3 decommissioned, 4 compromised. By the owner only."""
    assert self.workers[workerId].owner == msg.sender, "only the worker's owner may set its status"
    assert status >= ACTIVE and status <= COMPROMISED, "status must be 1 to 4"
    self.workers[workerId].status = status
    log WorkerStatusChanged(workerId=workerId, status=status)


@internal
@view
def _matches(wid: bytes32, workerType: uint256, organizationId: bytes32, applicationTypeId: bytes32) -> bool:
    """Reads only the fields filtered on (a whole Worker would load its details too)."""
    if workerType != 0 and self.workers[wid].workerType != workerType:
        return False
    if organizationId != empty(bytes32) and self.workers[wid].organizationId != organizationId:
        return False
    if applicationTypeId == empty(bytes32):
        return True
    for a: bytes32 in self.workers[wid].applicationTypeIds:
        if a == applicationTypeId:
            return True
    return False


@internal
@view
def _page(
    workerType: uint256, organizationId: bytes32, applicationTypeId: bytes32, start: uint256
) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    """Every match counted; up to PAGE ids from position `start` on; the tag is where the next page begins."""
    total: uint256 = 0
    ids: DynArray[bytes32, PAGE] = []
    tag: String[78] = ""
    n: uint256 = len(self.workerIds)
    for i: uint256 in range(n, bound=MAX_WORKERS):
        wid: bytes32 = self.workerIds[i]
        if not self._matches(wid, workerType, organizationId, applicationTypeId):
            continue
        total += 1
        if i < start:
            continue
        if len(ids) < PAGE:
            ids.append(wid)
        elif tag == "":
            tag = uint2str(i)
    return total, tag, ids


@external
@view
def workerLookUp(
    workerType: uint256, organizationId: bytes32, applicationTypeId: bytes32
) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    """(totalCount, lookupTag, ids): zero filters match any; a non-empty tag means more: ask workerLookUpNext."""
    return self._page(workerType, organizationId, applicationTypeId, 0)


@external
@view
def workerLookUpNext(
    workerType: uint256, organizationId: bytes32, applicationTypeId: bytes32, lookUpTag: String[78]
) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    """The page that starts at `lookUpTag`, the tag the previous page returned."""
    start: uint256 = 0
    digits: Bytes[78] = convert(lookUpTag, Bytes[78])
    assert len(digits) > 0 and len(digits) <= 8, "lookUpTag is not a tag workerLookUp returned"
    for i: uint256 in range(len(digits), bound=78):
        d: uint256 = convert(slice(digits, i, 1), uint256)
        assert d >= 48 and d <= 57, "lookUpTag is not a tag workerLookUp returned"
        start = start * 10 + d - 48
    return self._page(workerType, organizationId, applicationTypeId, start)


@external
@view
def workerRetrieve(workerId: bytes32) -> (uint256, uint256, bytes32, DynArray[bytes32, MAX_APP_TYPES], String[MAX_DETAILS]):
    """EEA: (status, workerType, organizationId, applicationTypeIds, details); status 0 for an unknown worker."""
    w: Worker = self.workers[workerId]
    return w.status, w.workerType, w.organizationId, w.applicationTypeIds, w.details


@external
@view
def workerKeys(workerId: bytes32) -> (address, bytes32, address, uint256):
    """(signer, evidenceHash, owner, status): what WorkOrderRegistry and clients check results against."""
    return self.workers[workerId].signer, self.workers[workerId].evidenceHash, self.workers[workerId].owner, self.workers[workerId].status


@external
@view
def workerEvidenceBlock(workerId: bytes32) -> uint256:
    """The block whose WorkerRegistered or WorkerUpdated event logged the evidence that evidenceHash covers."""
    return self.workers[workerId].evidenceBlock


@external
@view
def workerCount() -> uint256:
    return len(self.workerIds)
