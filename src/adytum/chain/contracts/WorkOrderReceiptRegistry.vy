# pragma version 0.4.3
# @title WorkOrderReceiptRegistry
# @notice EEA work-order receipts (create, update, retrieve, look up in pages), and the anchor of each worker's
#         receipt ledger: its signed tree heads, posted by the worker's owner, only ever growing.

interface WorkerRegistry:
    def workerKeys(workerId: bytes32) -> (address, bytes32, address, uint256): view

MAX_RECEIPTS: constant(uint256) = 4096
MAX_UPDATES: constant(uint256) = 64
PAGE: constant(uint256) = 16
MAX_SIG: constant(uint256) = 256
MAX_UPDATE: constant(uint256) = 2048

struct Receipt:
    workerServiceId: bytes32
    workerId: bytes32
    requesterId: bytes32
    status: uint256
    workOrderRequestHash: bytes32
    requesterGeneratedNonce: String[128]
    requesterSignature: String[MAX_SIG]
    signatureRules: String[64]
    creator: address
    updates: uint256

struct Update:
    updaterId: bytes32
    updateType: uint256
    updateData: String[MAX_UPDATE]
    updateSignature: String[MAX_SIG]
    signatureRules: String[64]

struct Head:
    treeSize: uint256
    rootHash: bytes32
    signature: String[MAX_SIG]
    timestamp: uint256
    block: uint256

event workOrderReceiptCreated:
    workOrderId: indexed(bytes32)
    workerId: indexed(bytes32)
    requesterId: indexed(bytes32)
    workerServiceId: bytes32
    receiptStatus: uint256
    workOrderRequestHash: bytes32

event workOrderReceiptUpdated:
    workOrderId: indexed(bytes32)
    updaterId: indexed(bytes32)
    updateType: uint256
    updateData: String[MAX_UPDATE]
    updateSignature: String[MAX_SIG]
    signatureRules: String[64]

event ledgerHeadAnchored:
    workerId: indexed(bytes32)
    treeSize: uint256
    rootHash: bytes32
    signature: String[MAX_SIG]
    timestamp: uint256

workerRegistry: public(address)
receipts: HashMap[bytes32, Receipt]
updates: HashMap[bytes32, HashMap[uint256, Update]]
receiptIds: public(DynArray[bytes32, MAX_RECEIPTS])
heads: HashMap[bytes32, Head]


@deploy
def __init__(workerRegistry: address):
    self.workerRegistry = workerRegistry


@external
def workOrderReceiptCreate(
    workOrderId: bytes32,
    workerServiceId: bytes32,
    workerId: bytes32,
    requesterId: bytes32,
    receiptCreateStatus: uint256,
    workOrderRequestHash: bytes32,
    requesterGeneratedNonce: String[128],
    requesterSignature: String[MAX_SIG],
    signatureRules: String[64],
):
    """One receipt per work order, created once."""
    assert workOrderId != empty(bytes32), "work order id is empty"
    assert self.receipts[workOrderId].creator == empty(address), "the receipt exists already"
    self.receipts[workOrderId] = Receipt(
        workerServiceId=workerServiceId,
        workerId=workerId,
        requesterId=requesterId,
        status=receiptCreateStatus,
        workOrderRequestHash=workOrderRequestHash,
        requesterGeneratedNonce=requesterGeneratedNonce,
        requesterSignature=requesterSignature,
        signatureRules=signatureRules,
        creator=msg.sender,
        updates=0,
    )
    self.receiptIds.append(workOrderId)
    log workOrderReceiptCreated(
        workOrderId=workOrderId,
        workerId=workerId,
        requesterId=requesterId,
        workerServiceId=workerServiceId,
        receiptStatus=receiptCreateStatus,
        workOrderRequestHash=workOrderRequestHash,
    )


@external
def workOrderReceiptUpdate(
    workOrderId: bytes32,
    updaterId: bytes32,
    updateType: uint256,
    updateData: String[MAX_UPDATE],
    updateSignature: String[MAX_SIG],
    signatureRules: String[64],
):
    """Append an update; a status update (updateType < 256, EEA) also sets the receipt's current status."""
    n: uint256 = self.receipts[workOrderId].updates
    assert self.receipts[workOrderId].creator != empty(address), "no receipt for this work order"
    assert n < MAX_UPDATES, "the receipt has its maximum of updates"
    self.updates[workOrderId][n] = Update(
        updaterId=updaterId,
        updateType=updateType,
        updateData=updateData,
        updateSignature=updateSignature,
        signatureRules=signatureRules,
    )
    self.receipts[workOrderId].updates = n + 1
    if updateType < 256:
        self.receipts[workOrderId].status = updateType
    log workOrderReceiptUpdated(
        workOrderId=workOrderId,
        updaterId=updaterId,
        updateType=updateType,
        updateData=updateData,
        updateSignature=updateSignature,
        signatureRules=signatureRules,
    )


@external
@view
def workOrderReceiptRetrieve(workOrderId: bytes32) -> (bytes32, bytes32, bytes32, uint256, bytes32, String[128], String[MAX_SIG], String[64]):
    """(workerServiceId, workerId, requesterId, currentStatus, requestHash, nonce, requesterSignature, rules)."""
    r: Receipt = self.receipts[workOrderId]
    assert r.creator != empty(address), "no receipt for this work order"
    return r.workerServiceId, r.workerId, r.requesterId, r.status, r.workOrderRequestHash, r.requesterGeneratedNonce, r.requesterSignature, r.signatureRules


@external
@view
def workOrderReceiptUpdateRetrieve(workOrderId: bytes32, updaterId: bytes32, updateIndex: uint256) -> (bytes32, uint256, String[MAX_UPDATE], String[MAX_SIG], String[64], uint256):
    """The updateIndex-th update (by `updaterId`, or by anyone if it is zero) and how many such updates there are."""
    r: Receipt = self.receipts[workOrderId]
    assert r.creator != empty(address), "no receipt for this work order"
    count: uint256 = 0
    found: Update = empty(Update)
    hit: bool = False
    for i: uint256 in range(r.updates, bound=MAX_UPDATES):
        u: Update = self.updates[workOrderId][i]
        if updaterId != empty(bytes32) and u.updaterId != updaterId:
            continue
        if count == updateIndex:
            found = u
            hit = True
        count += 1
    assert hit, "no such update"
    return found.updaterId, found.updateType, found.updateData, found.updateSignature, found.signatureRules, count


@internal
@view
def _page(workerServiceId: bytes32, workerId: bytes32, requesterId: bytes32, status: uint256, start: uint256) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    total: uint256 = 0
    ids: DynArray[bytes32, PAGE] = []
    tag: String[78] = ""
    for i: uint256 in range(len(self.receiptIds), bound=MAX_RECEIPTS):
        rid: bytes32 = self.receiptIds[i]
        r: Receipt = self.receipts[rid]
        if workerServiceId != empty(bytes32) and r.workerServiceId != workerServiceId:
            continue
        if workerId != empty(bytes32) and r.workerId != workerId:
            continue
        if requesterId != empty(bytes32) and r.requesterId != requesterId:
            continue
        if status != 0 and r.status != status:
            continue
        total += 1
        if i < start:
            continue
        if len(ids) < PAGE:
            ids.append(rid)
        elif tag == "":
            tag = uint2str(i)
    return total, tag, ids


@external
@view
def workOrderReceiptLookUp(workerServiceId: bytes32, workerId: bytes32, requesterId: bytes32, receiptStatus: uint256) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    """(totalCount, lookupTag, ids); zero filters match any; a non-empty tag: ask workOrderReceiptLookUpNext."""
    return self._page(workerServiceId, workerId, requesterId, receiptStatus, 0)


@external
@view
def workOrderReceiptLookUpNext(workerServiceId: bytes32, workerId: bytes32, requesterId: bytes32, receiptStatus: uint256, lastLookUpTag: String[78]) -> (uint256, String[78], DynArray[bytes32, PAGE]):
    digits: Bytes[78] = convert(lastLookUpTag, Bytes[78])
    assert len(digits) > 0 and len(digits) <= 8, "not a tag workOrderReceiptLookUp returned"
    start: uint256 = 0
    for i: uint256 in range(len(digits), bound=78):
        d: uint256 = convert(slice(digits, i, 1), uint256)
        assert d >= 48 and d <= 57, "not a tag workOrderReceiptLookUp returned"
        start = start * 10 + d - 48
    return self._page(workerServiceId, workerId, requesterId, receiptStatus, start)


@external
def ledgerAnchor(workerId: bytes32, treeSize: uint256, rootHash: bytes32, signature: String[MAX_SIG], timestamp: uint256):
    """Anchor the worker's latest signed tree head (its signature is checked off chain, adytum.ledger); by the
    worker's owner, and only a larger tree than the one anchored."""
    signer: address = empty(address)
    evidence: bytes32 = empty(bytes32)
    owner: address = empty(address)
    status: uint256 = 0
    signer, evidence, owner, status = staticcall WorkerRegistry(self.workerRegistry).workerKeys(workerId)
    assert owner != empty(address) and msg.sender == owner, "only the worker's owner may anchor its ledger"
    assert treeSize > self.heads[workerId].treeSize, "the anchored tree is already as large"
    self.heads[workerId] = Head(treeSize=treeSize, rootHash=rootHash, signature=signature, timestamp=timestamp, block=block.number)
    log ledgerHeadAnchored(workerId=workerId, treeSize=treeSize, rootHash=rootHash, signature=signature, timestamp=timestamp)


@external
@view
def ledgerHead(workerId: bytes32) -> (uint256, bytes32, String[MAX_SIG], uint256, uint256):
    """(treeSize, rootHash, signature, timestamp, block) of the worker's last anchored head; size 0 if none."""
    h: Head = self.heads[workerId]
    return h.treeSize, h.rootHash, h.signature, h.timestamp, h.block
