// The IOTA Foundation's TypeScript SDK as the judge of what our wallet makes.
//
// Reads one JSON request on stdin, writes one JSON answer on stdout:
//   {"transactions": [{"tx_bytes": b64, "signature": b64, "secret"?: str}],
//    "secrets": [str],            iotaprivkey1... keys or mnemonics
//    "builds": [{"sender", "receiver", "amount", "gas_coins": [[id, version, digest]],
//                "gas_price", "gas_budget", "expires_after_epoch"?}],
//    "signed": [b64]}              SenderSignedData, as a fullnode's rawTransaction
// -> {"transactions": [{"ok": true, "signer", "sender", "digest", "receiver",
//                       "amount", "gas_owner", "gas_price", "gas_budget",
//                       "gas_coins": [[id, version, digest]], "commands": [kinds],
//                       "sdk_signature"?: b64} | {"ok": false, "error"}],
//     "secrets": [{"address"} | {"error"}],
//     "builds": [{"tx_bytes": b64} | {"error"}],   the SDK's own bytes for that transfer
//     "signed": [{"ok": true, "transactions": n, "intent": [scope, version, app],
//                 "tx_bytes": b64, "digest", "signatures": [b64], "sender",
//                 "amount", "receiver"} | {"ok": false, "error"}]}
// "signer" is the address of the key that verifyTransactionSignature accepts;
// "sdk_signature" is the SDK's own signature of the same bytes with "secret".
// Nothing here is our code: every decode and check is the SDK's.
import { bcs } from "@iota/iota-sdk/bcs";
import { Ed25519Keypair } from "@iota/iota-sdk/keypairs/ed25519";
import { Transaction, TransactionDataBuilder } from "@iota/iota-sdk/transactions";
import { fromBase64, toBase64 } from "@iota/iota-sdk/utils";
import { verifyTransactionSignature } from "@iota/iota-sdk/verify";

function keypairOf(secret) {
  return secret.startsWith("iotaprivkey")
    ? Ed25519Keypair.fromSecretKey(secret)
    : Ed25519Keypair.deriveKeypair(secret);
}

async function judge(item) {
  const bytes = fromBase64(item.tx_bytes);
  const signer = await verifyTransactionSignature(bytes, item.signature);
  const data = bcs.TransactionData.parse(bytes).V1;
  const ptb = data.kind.ProgrammableTransaction;
  const pure = ptb.inputs.map((i) => {
    if (!i.Pure) return null;
    const raw = i.Pure.bytes;
    return typeof raw === "string" ? fromBase64(raw) : Uint8Array.from(raw);
  });
  const out = {
    ok: true,
    signer: signer.toIotaAddress(),
    sender: data.sender,
    digest: TransactionDataBuilder.getDigestFromBytes(bytes),
    commands: ptb.commands.map((c) => Object.keys(c).filter((k) => k !== "$kind")[0]),
    gas_owner: data.gasData.owner,
    gas_price: String(data.gasData.price),
    gas_budget: String(data.gasData.budget),
    gas_coins: data.gasData.payment.map((r) => [r.objectId, String(r.version), r.digest]),
    expiration: Object.keys(data.expiration).filter((k) => k !== "$kind")[0],
  };
  if (data.expiration.Epoch !== undefined) out.expires_after_epoch = String(data.expiration.Epoch);
  const split = ptb.commands.find((c) => c.SplitCoins)?.SplitCoins;
  const transfer = ptb.commands.find((c) => c.TransferObjects)?.TransferObjects;
  if (split && split.amounts.length === 1 && split.amounts[0].Input !== undefined) {
    out.amount = String(bcs.u64().parse(pure[split.amounts[0].Input]));
    out.split_from = Object.keys(split.coin).filter((k) => k !== "$kind")[0];
  }
  if (transfer && transfer.address.Input !== undefined) {
    out.receiver = bcs.Address.parse(pure[transfer.address.Input]);
  }
  if (item.secret) {
    out.sdk_signature = (await keypairOf(item.secret).signTransaction(bytes)).signature;
  }
  return out;
}

// A fullnode's rawTransaction: the SDK's SenderSignedData, then its TransactionData
// serialized again by the SDK (the bytes a digest is taken of).
function signed(b64) {
  const all = bcs.SenderSignedData.parse(fromBase64(b64));
  const { intentMessage, txSignatures } = all[0];
  const txBytes = bcs.TransactionData.serialize(intentMessage.value).toBytes();
  const ptb = intentMessage.value.V1.kind.ProgrammableTransaction;
  const pure = ptb.inputs.map((i) => (i.Pure ? fromBase64(i.Pure.bytes) : null));
  const split = ptb.commands.find((c) => c.SplitCoins)?.SplitCoins;
  const transfer = ptb.commands.find((c) => c.TransferObjects)?.TransferObjects;
  const kind = (e) => Object.keys(e).filter((k) => k !== "$kind")[0];
  return {
    ok: true,
    transactions: all.length,
    intent: [kind(intentMessage.intent.scope), kind(intentMessage.intent.version),
      kind(intentMessage.intent.appId)],
    tx_bytes: toBase64(txBytes),
    digest: TransactionDataBuilder.getDigestFromBytes(txBytes),
    signatures: txSignatures,
    sender: intentMessage.value.V1.sender,
    amount: String(bcs.u64().parse(pure[split.amounts[0].Input])),
    receiver: bcs.Address.parse(pure[transfer.address.Input]),
  };
}

// The transfer our wallet makes, built by the SDK: split from the gas coin, transfer
// the split's result (the whole Result, as ours does) to the receiver.
async function build(b) {
  const tx = new Transaction();
  const coin = tx.splitCoins(tx.gas, [tx.pure.u64(BigInt(b.amount))]);
  tx.transferObjects([coin], tx.pure.address(b.receiver));
  tx.setSender(b.sender);
  tx.setGasOwner(b.sender);
  tx.setGasPrice(BigInt(b.gas_price));
  tx.setGasBudget(BigInt(b.gas_budget));
  tx.setGasPayment(b.gas_coins.map(([objectId, version, digest]) =>
    ({ objectId, version: String(version), digest })));
  tx.setExpiration(b.expires_after_epoch == null ? { None: true }
    : { Epoch: Number(b.expires_after_epoch) });
  return { tx_bytes: toBase64(await tx.build()) };
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const answer = { transactions: [], secrets: [] };
for (const item of request.transactions ?? []) {
  try {
    answer.transactions.push(await judge(item));
  } catch (err) {
    answer.transactions.push({ ok: false, error: String(err?.message ?? err) });
  }
}
for (const secret of request.secrets ?? []) {
  try {
    answer.secrets.push({ address: keypairOf(secret).toIotaAddress() });
  } catch (err) {
    answer.secrets.push({ error: String(err?.message ?? err) });
  }
}
answer.builds = [];
for (const b of request.builds ?? []) {
  try {
    answer.builds.push(await build(b));
  } catch (err) {
    answer.builds.push({ error: String(err?.message ?? err) });
  }
}
answer.signed = [];
for (const raw of request.signed ?? []) {
  try {
    answer.signed.push(signed(raw));
  } catch (err) {
    answer.signed.push({ ok: false, error: String(err?.message ?? err) });
  }
}
process.stdout.write(JSON.stringify(answer));
