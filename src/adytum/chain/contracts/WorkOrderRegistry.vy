# pragma version 0.4.3
# @title WorkOrderRegistry
# @notice EEA work orders in the proxy model: a dapp submits an order for a registered worker; the worker's
#         connector runs it off chain and posts the result. A result is accepted only with a secp256k1
#         signature, by the worker's registered verification key, over the EEA response hash, which this
#         contract computes itself from the posted fields and the order it holds (adytum.protocol.hashing):
#           head  = sha256(workerNonce ++ hex(workOrderId) ++ hex(workerId) ++ workloadId ++ hex(requesterId))
#           items = sha256(dataHash ++ data ++ encryptedDataEncryptionKey ++ iv, for each item by index)
#           hash  = sha256(head ++ items)   (or sha256(head) without items)
#         so a result by anyone else, or altered in any signed byte, reverts.

interface WorkerRegistry:
    def workerKeys(workerId: bytes32) -> (address, bytes32, address, uint256): view

MAX_REQUEST: constant(uint256) = 16384
MAX_ITEMS: constant(uint256) = 4
MAX_DATA: constant(uint256) = 2048
MAX_BATCH: constant(uint256) = 8
VERSION: constant(uint256) = 1

PENDING: constant(uint256) = 0
COMPLETED: constant(uint256) = 1
FAILED: constant(uint256) = 2
ACTIVE: constant(uint256) = 1
# secp256k1 n / 2: a higher s is the other of the two valid signatures, refused so each result has one form
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

struct Item:
    index: uint256
    dataHash: String[64]
    data: String[MAX_DATA]
    encryptedDataEncryptionKey: String[1024]
    iv: String[32]

struct Signature:
    v: uint8
    r: uint256
    s: uint256

struct Result:
    workOrderId: bytes32
    workloadId: String[128]
    workerNonce: String[128]
    outData: DynArray[Item, MAX_ITEMS]
    signature: Signature

struct Order:
    status: uint256
    workerId: bytes32
    requesterId: bytes32
    responseHash: bytes32
    submitter: address
    submittedBlock: uint256
    completedBlock: uint256

event workOrderSubmitted:
    workOrderId: indexed(bytes32)
    workerId: indexed(bytes32)
    requesterId: indexed(bytes32)
    workOrderRequest: String[MAX_REQUEST]
    errorCode: uint256
    senderAddress: address
    version: uint256

event workOrderCompleted:
    requesterId: indexed(bytes32)
    workOrderId: indexed(bytes32)
    workOrderStatus: uint256
    workloadId: String[128]
    workerNonce: String[128]
    outData: DynArray[Item, MAX_ITEMS]
    signature: Signature
    responseHash: bytes32
    errorCode: uint256
    errorMessage: String[256]
    version: uint256

workerRegistry: public(address)
orders: HashMap[bytes32, Order]


@deploy
def __init__(workerRegistry: address):
    self.workerRegistry = workerRegistry


@external
def workOrderSubmit(workOrderId: bytes32, workerId: bytes32, requesterId: bytes32, workOrderRequest: String[MAX_REQUEST]) -> uint256:
    """Accept an order (its WorkOrderSubmit params as JSON) for an active registered worker; ids are never reused."""
    assert workOrderId != empty(bytes32), "work order id is empty"
    assert self.orders[workOrderId].submittedBlock == 0, "work order id was already used"
    signer: address = empty(address)
    evidence: bytes32 = empty(bytes32)
    owner: address = empty(address)
    status: uint256 = 0
    signer, evidence, owner, status = staticcall WorkerRegistry(self.workerRegistry).workerKeys(workerId)
    assert owner != empty(address), "worker is not registered"
    assert status == ACTIVE, "worker is not active"
    self.orders[workOrderId] = Order(
        status=PENDING,
        workerId=workerId,
        requesterId=requesterId,
        responseHash=empty(bytes32),
        submitter=msg.sender,
        submittedBlock=block.number,
        completedBlock=0,
    )
    log workOrderSubmitted(
        workOrderId=workOrderId,
        workerId=workerId,
        requesterId=requesterId,
        workOrderRequest=workOrderRequest,
        errorCode=0,
        senderAddress=msg.sender,
        version=VERSION,
    )
    return 0


@internal
@pure
def _hex(word: bytes32) -> Bytes[64]:
    """Lower-case hex of 32 bytes, as ids are written on the wire (and hashed)."""
    n: uint256 = convert(word, uint256)
    halves: uint256[2] = [n >> 128, n & convert(max_value(uint128), uint256)]
    out: uint256[2] = [0, 0]
    for h: uint256 in range(2):
        acc: uint256 = 0
        for j: uint256 in range(32):
            nibble: uint256 = (halves[h] >> (4 * (31 - j))) & 15
            acc = (acc << 8) | (nibble + 48 if nibble < 10 else nibble + 87)
        out[h] = acc
    return concat(convert(out[0], bytes32), convert(out[1], bytes32))


@internal
@pure
def _item(i: Item) -> Bytes[3168]:
    return convert(concat(i.dataHash, i.data, i.encryptedDataEncryptionKey, i.iv), Bytes[3168])


@internal
@pure
def _items_hash(items: DynArray[Item, MAX_ITEMS]) -> bytes32:
    n: uint256 = len(items)
    for k: uint256 in range(1, MAX_ITEMS):
        if k < n:
            assert items[k].index > items[k - 1].index, "outData must be in index order, each index once"
    if n == 1:
        return sha256(self._item(items[0]))
    if n == 2:
        return sha256(concat(self._item(items[0]), self._item(items[1])))
    if n == 3:
        return sha256(concat(self._item(items[0]), self._item(items[1]), self._item(items[2])))
    return sha256(concat(self._item(items[0]), self._item(items[1]), self._item(items[2]), self._item(items[3])))


@internal
@view
def _response_hash(o: Order, r: Result) -> bytes32:
    head: bytes32 = sha256(
        concat(
            convert(r.workerNonce, Bytes[128]),
            self._hex(r.workOrderId),
            self._hex(o.workerId),
            convert(r.workloadId, Bytes[128]),
            self._hex(o.requesterId),
        )
    )
    if len(r.outData) == 0:
        return sha256(head)
    return sha256(concat(head, self._items_hash(r.outData)))


@internal
def _complete(r: Result):
    o: Order = self.orders[r.workOrderId]
    assert o.submittedBlock != 0, "unknown work order"
    assert o.status == PENDING, "work order is already answered"
    signer: address = empty(address)
    evidence: bytes32 = empty(bytes32)
    owner: address = empty(address)
    status: uint256 = 0
    signer, evidence, owner, status = staticcall WorkerRegistry(self.workerRegistry).workerKeys(o.workerId)
    digest: bytes32 = self._response_hash(o, r)
    assert r.signature.s <= HALF_N, "signature s is not low"
    recovered: address = ecrecover(digest, r.signature.v, r.signature.r, r.signature.s)
    assert recovered != empty(address) and recovered == signer, "result is not signed by the worker"
    self.orders[r.workOrderId].status = COMPLETED
    self.orders[r.workOrderId].responseHash = digest
    self.orders[r.workOrderId].completedBlock = block.number
    log workOrderCompleted(
        requesterId=o.requesterId,
        workOrderId=r.workOrderId,
        workOrderStatus=COMPLETED,
        workloadId=r.workloadId,
        workerNonce=r.workerNonce,
        outData=r.outData,
        signature=r.signature,
        responseHash=digest,
        errorCode=0,
        errorMessage="",
        version=VERSION,
    )


@external
def workOrderComplete(result: Result):
    """Post a signed result; anyone may relay it, the signature is what counts."""
    self._complete(result)


@external
def workOrderCompleteBatch(results: DynArray[Result, MAX_BATCH]):
    """Several signed results in one transaction (each checked as by workOrderComplete; one bad one reverts all)."""
    for r: Result in results:
        self._complete(r)


@external
def workOrderCompleteByHash(workOrderId: bytes32, responseHash: bytes32, signature: Signature):
    """Only the signed response hash on chain, the result itself off chain (WorkOrderGetResult at the worker's
    node): the signature binds the hash to the worker, and a client checks the result it fetches against it."""
    o: Order = self.orders[workOrderId]
    assert o.submittedBlock != 0, "unknown work order"
    assert o.status == PENDING, "work order is already answered"
    signer: address = empty(address)
    evidence: bytes32 = empty(bytes32)
    owner: address = empty(address)
    status: uint256 = 0
    signer, evidence, owner, status = staticcall WorkerRegistry(self.workerRegistry).workerKeys(o.workerId)
    assert signature.s <= HALF_N, "signature s is not low"
    recovered: address = ecrecover(responseHash, signature.v, signature.r, signature.s)
    assert recovered != empty(address) and recovered == signer, "result is not signed by the worker"
    self.orders[workOrderId].status = COMPLETED
    self.orders[workOrderId].responseHash = responseHash
    self.orders[workOrderId].completedBlock = block.number
    log workOrderCompleted(
        requesterId=o.requesterId,
        workOrderId=workOrderId,
        workOrderStatus=COMPLETED,
        workloadId="",
        workerNonce="",
        outData=[],
        signature=signature,
        responseHash=responseHash,
        errorCode=0,
        errorMessage="",
        version=VERSION,
    )


@external
def workOrderFail(workOrderId: bytes32, errorCode: uint256, errorMessage: String[256]):
    """The worker's EEA error for an order it could not run (errors are unsigned in EEA): by the worker's owner."""
    o: Order = self.orders[workOrderId]
    assert o.submittedBlock != 0, "unknown work order"
    assert o.status == PENDING, "work order is already answered"
    assert errorCode != 0, "an error needs a non-zero code"
    signer: address = empty(address)
    evidence: bytes32 = empty(bytes32)
    owner: address = empty(address)
    status: uint256 = 0
    signer, evidence, owner, status = staticcall WorkerRegistry(self.workerRegistry).workerKeys(o.workerId)
    assert msg.sender == owner, "only the worker's owner may fail its orders"
    self.orders[workOrderId].status = FAILED
    self.orders[workOrderId].completedBlock = block.number
    log workOrderCompleted(
        requesterId=o.requesterId,
        workOrderId=workOrderId,
        workOrderStatus=FAILED,
        workloadId="",
        workerNonce="",
        outData=[],
        signature=empty(Signature),
        responseHash=empty(bytes32),
        errorCode=errorCode,
        errorMessage=errorMessage,
        version=VERSION,
    )


@external
@view
def workOrderGet(workOrderId: bytes32) -> (uint256, bytes32, bytes32, bytes32, uint256, uint256):
    """(status 0 pending / 1 completed / 2 failed, workerId, requesterId, responseHash, submittedBlock,
    completedBlock): the request and the result are in the events of those blocks (not kept in storage)."""
    o: Order = self.orders[workOrderId]
    assert o.submittedBlock != 0, "unknown work order"
    return o.status, o.workerId, o.requesterId, o.responseHash, o.submittedBlock, o.completedBlock
